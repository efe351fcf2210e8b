//! Settings of the Pub/Sub bus and the resource names derived from Herald's topics and groups.

use std::time::Duration;

use crate::BusError;

/// Where the Pub/Sub API is and how requests authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The emulator at `host:port` (`PUBSUB_EMULATOR_HOST`): plain HTTP, no credentials.
    Emulator { host: String },
    /// Google Cloud (`https://pubsub.googleapis.com`) with Application Default Credentials.
    Google,
}

/// The Pub/Sub bus's settings.
#[derive(Debug, Clone)]
pub struct PubsubConfig {
    /// The Google Cloud project that holds the topics and subscriptions.
    pub project: String,
    pub endpoint: Endpoint,
    /// How long `publish` waits for Pub/Sub's answer before it fails retryably (ingress `503`).
    pub publish_timeout: Duration,
    /// Any other API call's limit (pull, acknowledge, create).
    pub request_timeout: Duration,
    /// The subscriptions' ack deadline; held deliveries are extended every third of it.
    pub ack_deadline: Duration,
    /// How long topics keep acknowledged messages (`messageRetentionDuration`), so that a new
    /// group can start at the earliest event or at a time (subscription `seek`).
    pub topic_retention: Duration,
    /// Subscriptions created with `enableMessageOrdering`: messages with the same ordering key
    /// (the event's `partitionkey`) are delivered in publish order.
    pub message_ordering: bool,
    /// Messages one pull asks for at most.
    pub max_messages: u32,
}

/// Pub/Sub's limit on a published message (data, attributes and their names).
pub const MAX_MESSAGE_BYTES: u64 = 10 * 1000 * 1000;

impl PubsubConfig {
    /// Settings for `project` with the endpoint the environment names: the emulator when
    /// `PUBSUB_EMULATOR_HOST` is set, Google Cloud otherwise.
    pub fn from_env(project: impl Into<String>) -> Self {
        let endpoint = match std::env::var("PUBSUB_EMULATOR_HOST") {
            Ok(host) if !host.trim().is_empty() => Endpoint::Emulator {
                host: host.trim().to_owned(),
            },
            _ => Endpoint::Google,
        };
        Self::new(project, endpoint)
    }

    pub fn new(project: impl Into<String>, endpoint: Endpoint) -> Self {
        Self {
            project: project.into(),
            endpoint,
            publish_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            ack_deadline: Duration::from_secs(30),
            topic_retention: Duration::from_secs(24 * 3600),
            message_ordering: true,
            max_messages: 256,
        }
    }

    /// The API's base URL (`.../v1`).
    pub fn base_url(&self) -> String {
        match &self.endpoint {
            Endpoint::Emulator { host } => format!("http://{host}/v1"),
            Endpoint::Google => "https://pubsub.googleapis.com/v1".to_owned(),
        }
    }

    /// `projects/{project}/topics/{topic}`
    pub fn topic_path(&self, topic: &str) -> Result<String, BusError> {
        check_id("topic", topic)?;
        Ok(format!("projects/{}/topics/{topic}", self.project))
    }

    /// `projects/{project}/subscriptions/{id}` of `group` on `topic`: the group's own name for
    /// the broker's groups (`knative-...`, unique per Herald installation, as the issue's
    /// naming asks), `{topic}.{group}` for any other caller, whose group names the [`Bus`]
    /// trait scopes to a topic (Pub/Sub's subscription names are per project).
    ///
    /// [`Bus`]: crate::Bus
    pub fn subscription_path(&self, topic: &str, group: &str) -> Result<String, BusError> {
        let id = subscription_id(topic, group);
        check_id("subscription", &id)?;
        Ok(format!("projects/{}/subscriptions/{id}", self.project))
    }
}

/// See [`PubsubConfig::subscription_path`].
pub fn subscription_id(topic: &str, group: &str) -> String {
    if group.starts_with("knative-") {
        group.to_owned()
    } else {
        format!("{topic}.{group}")
    }
}

/// Checks Pub/Sub's resource id rules: 3 to 255 characters, a letter first, then letters,
/// digits and `-_.~+%`, not starting with `goog`.
pub fn check_id(kind: &str, id: &str) -> Result<(), BusError> {
    let reject = |why: &str| BusError::Rejected {
        reason: format!("{kind} name {id:?} is not a Pub/Sub resource id: {why}"),
    };
    if !(3..=255).contains(&id.len()) {
        return Err(reject("it must have 3 to 255 characters"));
    }
    if !id.as_bytes()[0].is_ascii_alphabetic() {
        return Err(reject("it must start with a letter"));
    }
    if id.len() >= 4 && id[..4].eq_ignore_ascii_case("goog") {
        return Err(reject("it must not start with \"goog\""));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.~+%".contains(*c)))
    {
        return Err(reject(&format!("{c:?} is not allowed")));
    }
    Ok(())
}

/// Checks a project id: 6 to 30 lower-case letters, digits and hyphens on Google Cloud; the
/// emulator takes any id, so only the characters a URL path segment needs are checked.
pub fn check_project(project: &str) -> Result<(), BusError> {
    let valid = !project.is_empty()
        && project
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(BusError::Rejected {
            reason: format!("pubsub project {project:?} must be letters, digits, '-' and '_'"),
        })
    }
}

/// A `google.protobuf.Duration` in JSON (`"86400s"`).
pub fn duration_json(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_follow_pubsub_rules() {
        assert!(check_id("topic", "knative-broker-default-b").is_ok());
        assert!(check_id("topic", "ab").is_err());
        assert!(check_id("topic", "1abc").is_err());
        assert!(check_id("topic", "googthing").is_err());
        assert!(check_id("topic", "a/bc").is_err());
        assert!(check_id("topic", &"a".repeat(256)).is_err());
    }

    #[test]
    fn broker_groups_keep_their_names_and_others_are_scoped_to_the_topic() {
        let c = PubsubConfig::new("p", Endpoint::Google);
        assert_eq!(
            c.subscription_path("knative-broker-ns-b", "knative-trigger-ns-t")
                .unwrap(),
            "projects/p/subscriptions/knative-trigger-ns-t"
        );
        assert_eq!(
            c.subscription_path("topic-1", "g").unwrap(),
            "projects/p/subscriptions/topic-1.g"
        );
    }
}
