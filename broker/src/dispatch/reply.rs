//! A subscription's reply sent to a URL `spec.reply`: the subscription's retries, then its
//! dead-letter sink, then its parking lot, so nothing is lost.

use cloudevents::Event;
use cloudevents::event::ExtensionValue;
use tokio::sync::watch;

use super::{Outcome, Stop, TriggerContext};
use crate::config::Target;

impl TriggerContext {
    /// Sends a reply to a subscription's URL `spec.reply` with the subscription's retries; a
    /// reply that cannot be delivered goes the way of an undeliverable event (dead-letter sink,
    /// else the parking lot), so nothing is lost. `reply` carries its decremented TTL already.
    pub(super) async fn send_reply(
        &self,
        target: &Target,
        reply: Event,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let failure = match self.attempt_all(target, &reply, shutdown).await {
            Ok(_) => return Outcome::Finished,
            Err(Stop::HandBack) => return Outcome::HandBack,
            Err(Stop::Exhausted(failure)) => failure,
        };
        self.stats.exhausted.inc();
        let mut dead = self.dead_letter_event(&reply, &failure);
        dead.set_extension(
            "knativeerrordest",
            ExtensionValue::String(target.to_string()),
        );
        if let Some(dead_letter) = &self.trigger.delivery.dead_letter {
            match self.attempt_all(dead_letter, &dead, shutdown).await {
                Ok(_) => {
                    self.stats.dead_lettered_total.inc();
                    self.stats.dead_lettered.inc();
                    return Outcome::Finished;
                }
                Err(Stop::HandBack) => return Outcome::HandBack,
                Err(Stop::Exhausted(_)) => {}
            }
        }
        self.park(&dead, &format!("reply: {}", failure.message), shutdown)
            .await
    }
}
