//! Two Herald replicas on one Kafka-protocol broker (tansu): they split each trigger's
//! partitions, and `kill -9` of one loses nothing: offsets were committed only past delivered
//! events, so the restarted replica (or, on Kafka, the other one once the killed member's
//! session expires) delivers what the killed one held. tansu 0.6 keeps a killed member's
//! partitions assigned after its session expires, so here the killed replica is restarted.
//! Needs `tansu` (`scripts/ensure-tansu`); fails, never skips, without it.

use herald_buses::kafka::testing::Tansu;
use herald_tests::HeraldOptions;
use herald_tests::replicas::{AfterKill, two_replicas_share_a_trigger_and_lose_nothing};

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_split_partitions_and_a_killed_one_loses_nothing() {
    let tansu = tokio::task::spawn_blocking(Tansu::start).await.unwrap();
    // A short session so membership settles fast; one record per batch because tansu 0.6
    // cannot fetch from inside a batch (see the Kafka bus docs); keyless events spread over
    // partitions (Herald's default keeps them on one, in order).
    let options = || HeraldOptions {
        env: vec![(
            "HERALD_KAFKA_OPTIONS".into(),
            "consumer.session.timeout.ms=6000,consumer.heartbeat.interval.ms=1000,\
             producer.batch.num.messages=1,producer.partitioner=murmur2_random"
                .into(),
        )],
        ..Default::default()
    };
    let bus = format!("kafka://{}", tansu.brokers());
    two_replicas_share_a_trigger_and_lose_nothing(&bus, options, AfterKill::Restarts).await;
}
