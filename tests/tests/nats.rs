//! Two Herald replicas on one NATS JetStream: they share each trigger's work, and killing one
//! loses nothing (its unacknowledged events reach the other after `AckWait`, 30 s).
//! Needs a real `nats-server` (`scripts/ensure-nats-server`); fails, never skips, without it.

use herald_buses::nats::testing::NatsServer;
use herald_tests::HeraldOptions;
use herald_tests::replicas::{AfterKill, two_replicas_share_a_trigger_and_lose_nothing};

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_a_trigger_and_a_killed_one_loses_nothing() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    two_replicas_share_a_trigger_and_lose_nothing(
        &nats.url(),
        HeraldOptions::default,
        AfterKill::StaysDown,
    )
    .await;
}
