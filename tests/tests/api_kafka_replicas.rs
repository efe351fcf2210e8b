//! Two Herald replicas on one Kafka-protocol broker (tansu) share their API resources through
//! a compacted topic. Needs `tansu` (`scripts/ensure-tansu`); fails, never skips, without it.

use herald_buses::kafka::testing::Tansu;
use herald_tests::api_replicas::two_replicas_converge_on_api_resources;

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_converge_on_api_resources_through_a_compacted_topic() {
    let tansu = tokio::task::spawn_blocking(Tansu::start).await.unwrap();
    // One record per batch: tansu 0.6 cannot fetch from inside a batch (see the Kafka bus docs).
    let env = vec![(
        "HERALD_KAFKA_OPTIONS".to_owned(),
        "producer.batch.num.messages=1".to_owned(),
    )];
    two_replicas_converge_on_api_resources(&format!("kafka://{}", tansu.brokers()), env).await;
}
