//! Two Herald replicas on one NATS share their API resources through a JetStream key-value
//! bucket. Needs a real `nats-server` (`scripts/ensure-nats-server`); fails, never skips,
//! without it.

use herald_buses::nats::testing::NatsServer;
use herald_tests::api_replicas::two_replicas_converge_on_api_resources;

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_converge_on_api_resources_through_a_nats_bucket() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    two_replicas_converge_on_api_resources(&nats.url(), Vec::new()).await;
}
