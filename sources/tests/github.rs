//! Real-shaped GitHub deliveries, signed as GitHub signs them, converted and compared attribute
//! by attribute with SOURCES.md (Knative mapping) and the CloudEvents adapter spec.
#![allow(
    clippy::disallowed_methods,
    reason = "tests read fixtures and write files directly"
)]

mod common;

use chrono::{DateTime, Utc};
use cloudevents::event::ExtensionValue;
use cloudevents::{AttributesReader, Data};
use common::github::{V, config, delivery, fixture, now};
use herald_sources::github::{GithubError, Mapping};

/// `(event, subject, extensions)` exactly as SOURCES.md's table lists them for one fixture.
type Expectation = (&'static str, Option<&'static str>, Vec<(&'static str, V)>);

fn expectations() -> Vec<Expectation> {
    use V::{B, I, S};
    let repo = || {
        vec![
            ("owner", S("octo-org")),
            ("repository", S("hello-world")),
            ("sender", S("monalisa")),
        ]
    };
    let with = |mut base: Vec<(&'static str, V)>, more: Vec<(&'static str, V)>| {
        base.extend(more);
        base
    };
    let act = |a: &'static str| with(repo(), vec![("action", S(a))]);
    vec![
        ("check_run", Some("128620228"), act("completed")),
        ("check_suite", Some("118578147"), act("requested")),
        (
            "commit_comment",
            Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246#commitcomment-33548674"),
            act("created"),
        ),
        (
            "create",
            Some("tag"),
            with(repo(), vec![("ref", S("simple-tag"))]),
        ),
        (
            "delete",
            Some("tag"),
            with(repo(), vec![("ref", S("simple-tag"))]),
        ),
        ("deployment", Some("145988746"), repo()),
        ("deployment_status", Some("145988746"), repo()),
        ("fork", Some("186853261"), repo()),
        ("gollum", Some("Home,Setup"), repo()),
        (
            "installation",
            Some("2311213"),
            vec![
                ("installation", S("2311213")),
                ("sender", S("monalisa")),
                ("action", S("deleted")),
            ],
        ),
        (
            "installation_repositories",
            Some("2311213"),
            vec![
                ("installation", S("2311213")),
                ("sender", S("monalisa")),
                ("action", S("added")),
            ],
        ),
        (
            "issue_comment",
            Some("1#issuecomment-492700400"),
            act("created"),
        ),
        (
            "issues",
            Some("1"),
            with(
                act("labeled"),
                vec![("label", S("bug")), ("assignee", S("hubot"))],
            ),
        ),
        (
            "label",
            Some("bug"),
            with(act("created"), vec![("label", S("bug"))]),
        ),
        ("member", Some("583231"), act("added")),
        (
            "membership",
            Some("583231"),
            vec![
                ("owner", S("octo-org")),
                ("scope", S("team")),
                ("sender", S("monalisa")),
                ("action", S("removed")),
            ],
        ),
        ("milestone", Some("1"), act("created")),
        (
            "organization",
            Some("member_added"),
            vec![
                ("owner", S("octo-org")),
                ("sender", S("monalisa")),
                ("action", S("member_added")),
            ],
        ),
        (
            "org_block",
            Some("blocked"),
            vec![
                ("owner", S("octo-org")),
                ("sender", S("monalisa")),
                ("action", S("blocked")),
            ],
        ),
        ("page_build", Some("130514899"), repo()),
        ("ping", Some("109948940"), repo()),
        ("project", Some("created"), act("created")),
        ("project_card", Some("created"), act("created")),
        ("project_column", Some("created"), act("created")),
        ("public", Some("186853002"), repo()),
        ("repository", Some("186853002"), act("publicized")),
        ("watch", Some("186853002"), act("started")),
        ("team_add", Some("186853002"), repo()),
        (
            "pull_request",
            Some("42"),
            with(
                act("labeled"),
                vec![
                    ("installation", S("2311213")),
                    ("number", I(42)),
                    ("label", S("bug")),
                    ("assignee", S("hubot")),
                ],
            ),
        ),
        (
            "pull_request_review",
            Some("237895671"),
            with(
                act("submitted"),
                vec![("installation", S("2311213")), ("review", S("approved"))],
            ),
        ),
        (
            "pull_request_review_comment",
            Some("284312630"),
            with(act("created"), vec![("installation", S("2311213"))]),
        ),
        (
            "push",
            Some("6113728f27ae...000000000000"),
            with(
                repo(),
                vec![
                    ("installation", S("2311213")),
                    ("pusher", S("monalisa")),
                    ("ref", S("refs/tags/simple-tag")),
                    ("created", B(false)),
                    ("deleted", B(true)),
                    ("forced", B(false)),
                ],
            ),
        ),
        (
            "release",
            Some("0.0.1"),
            with(
                act("published"),
                vec![
                    ("installation", S("2311213")),
                    ("release", S("First release")),
                ],
            ),
        ),
        (
            "repository_vulnerability_alert",
            Some("91095730"),
            vec![("action", S("create"))],
        ),
        (
            "security_advisory",
            Some("GHSA-rf4j-j272-fj86"),
            vec![("action", S("published"))],
        ),
        (
            "status",
            Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246"),
            with(
                repo(),
                vec![
                    ("state", S("success")),
                    ("name", S("octo-org/hello-world")),
                    ("context", S("default")),
                ],
            ),
        ),
        (
            "team",
            Some("3253328"),
            vec![("sender", S("monalisa")), ("action", S("created"))],
        ),
        // Not in Knative's list: accepted, no subject, the common extensions.
        ("workflow_run", None, act("completed")),
        ("merge_group", None, act("checks_requested")),
    ]
}

#[test]
fn every_fixture_converts_to_the_knative_attributes_of_sources_md() {
    let cfg = config(Mapping::Knative, &[]);
    let fixtures = common::github::fixture_names();
    let expected = expectations();
    assert_eq!(
        fixtures.len(),
        expected.len(),
        "one expectation per fixture file"
    );
    for (event_name, subject, exts) in expected {
        let body = fixture(event_name);
        let verified = delivery(event_name, &body, "d-1")
            .verify(&cfg.secret, false)
            .unwrap();
        let e = verified.to_event(&cfg, now()).unwrap();
        assert_eq!(e.id(), "d-1", "{event_name}");
        assert_eq!(e.ty(), format!("dev.knative.source.github.{event_name}"));
        assert_eq!(
            e.source().to_string(),
            "https://github.com/octo-org/hello-world"
        );
        assert_eq!(e.subject(), subject, "{event_name} subject");
        assert_eq!(
            e.time(),
            Some(&now()),
            "{event_name} time is the receive time"
        );
        assert_eq!(e.datacontenttype(), Some("application/json"));
        assert_eq!(
            e.data(),
            Some(&Data::Binary(body.clone())),
            "{event_name}: raw body unchanged"
        );
        let mut actual: Vec<(String, ExtensionValue)> = e
            .iter_extensions()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        let mut want: Vec<(String, ExtensionValue)> = exts
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect();
        actual.sort_by(|a, b| a.0.cmp(&b.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(actual, want, "{event_name} extensions");
    }
}

#[test]
fn org_wide_source_uses_the_organization_url() {
    let mut cfg = config(Mapping::Knative, &[]);
    cfg.source = "https://github.com/octo-org".into();
    let body = fixture("organization");
    let e = delivery("organization", &body, "d")
        .verify(&cfg.secret, false)
        .unwrap()
        .to_event(&cfg, now())
        .unwrap();
    assert_eq!(e.source().to_string(), "https://github.com/octo-org");
}

#[test]
fn adapter_mapping_follows_the_cloudevents_github_adapter_spec() {
    let cfg = config(Mapping::CloudEventsAdapter, &[]);
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let api = "https://api.github.com/repos/octo-org/hello-world";
    let cases = [
        (
            "pull_request",
            "com.github.pull_request.labeled",
            api.to_owned(),
            Some("42"),
            at("2024-03-01T10:00:00Z"),
        ),
        (
            "check_run",
            "com.github.check_run.completed",
            api.to_owned(),
            Some("128620228"),
            at("2024-03-01T09:55:00Z"),
        ),
        (
            "push",
            "com.github.push",
            api.to_owned(),
            Some("refs/tags/simple-tag"),
            now(),
        ),
        (
            "create",
            "com.github.create.tag",
            api.to_owned(),
            Some("simple-tag"),
            now(),
        ),
        (
            "issue_comment",
            "com.github.issue_comment.created",
            format!("{api}/issues/1"),
            Some("492700400"),
            at("2024-03-01T09:00:00Z"),
        ),
        (
            "membership",
            "com.github.membership.team.removed",
            "https://api.github.com/teams/123456".to_owned(),
            Some("octocat"),
            now(),
        ),
        (
            "security_advisory",
            "com.github.security_advisory.published",
            "github.com".to_owned(),
            Some("GHSA-rf4j-j272-fj86"),
            at("2018-10-03T21:13:54Z"),
        ),
        (
            "status",
            "com.github.status.success",
            api.to_owned(),
            Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246"),
            at("2024-03-01T09:00:00Z"),
        ),
        (
            "workflow_run",
            "com.github.workflow_run.completed",
            api.to_owned(),
            Some("CI"),
            now(),
        ),
        ("ping", "com.github.ping", api.to_owned(), None, now()),
    ];
    for (name, ty, source, subject, time) in cases {
        let body = fixture(name);
        let e = delivery(name, &body, "d-2")
            .verify(&cfg.secret, false)
            .unwrap()
            .to_event(&cfg, now())
            .unwrap();
        assert_eq!(e.ty(), ty, "{name}");
        assert_eq!(e.source().to_string(), source, "{name}");
        assert_eq!(e.subject(), subject, "{name}");
        assert_eq!(e.time(), Some(&time), "{name}");
        assert_eq!(e.id(), "d-2");
        assert_eq!(e.data(), Some(&Data::Binary(body)), "{name}");
    }
}

#[test]
fn forged_missing_and_malformed_signatures_are_401() {
    let cfg = config(Mapping::Knative, &[]);
    let body = fixture("push");
    let mut forged = delivery("push", &body, "d");
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    forged.body = tampered.into();
    let mut missing = delivery("push", &body, "d");
    missing.headers.remove("x-hub-signature-256");
    let mut malformed = delivery("push", &body, "d");
    malformed
        .headers
        .insert("x-hub-signature-256", "sha256=zz".parse().unwrap());
    let mut other_secret = delivery("push", &body, "d");
    other_secret.headers.insert(
        "x-hub-signature-256",
        common::github::sign256(b"other", &body).parse().unwrap(),
    );
    for (case, req) in [
        ("forged", forged),
        ("missing", missing),
        ("malformed", malformed),
        ("other secret", other_secret),
    ] {
        let err = req.verify(&cfg.secret, false).unwrap_err();
        assert_eq!(
            err.status(),
            http::StatusCode::UNAUTHORIZED,
            "{case}: {err}"
        );
    }
}

#[test]
fn sha1_signatures_are_accepted_only_when_allowed() {
    let cfg = config(Mapping::Knative, &[]);
    let body = fixture("push");
    let sha1_only = || {
        let mut req = delivery("push", &body, "d");
        req.headers.remove("x-hub-signature-256");
        req.headers.insert(
            "x-hub-signature",
            common::github::sign1(common::github::SECRET, &body)
                .parse()
                .unwrap(),
        );
        req
    };
    assert!(matches!(
        sha1_only().verify(&cfg.secret, false),
        Err(GithubError::MissingSignature)
    ));
    assert!(sha1_only().verify(&cfg.secret, true).is_ok());
    // A wrong SHA-256 signature is not rescued by a right SHA-1 one.
    let mut both = sha1_only();
    both.headers.insert(
        "x-hub-signature-256",
        common::github::sign256(b"other", &body).parse().unwrap(),
    );
    assert!(matches!(
        both.verify(&cfg.secret, true),
        Err(GithubError::WrongSignature)
    ));
}

#[test]
fn missing_delivery_or_event_header_is_400_after_the_signature_check() {
    let cfg = config(Mapping::Knative, &[]);
    let body = fixture("push");
    for header in ["x-github-delivery", "x-github-event"] {
        let mut req = delivery("push", &body, "d");
        req.headers.remove(header);
        let err = req.verify(&cfg.secret, false).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{header}");
        assert_eq!(err.reason(), "missing_header");
    }
}

#[test]
fn form_encoded_deliveries_carry_the_json_payload_as_data() {
    let cfg = config(Mapping::Knative, &[]);
    let json = fixture("ping");
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(&json).unwrap())
        .finish();
    let mut req = delivery("ping", form.as_bytes(), "d");
    req.headers.insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    let e = req
        .verify(&cfg.secret, false)
        .unwrap()
        .to_event(&cfg, now())
        .unwrap();
    assert_eq!(e.data(), Some(&Data::Binary(json)));
    assert_eq!(e.subject(), Some("109948940"));
}

#[test]
fn event_types_filter_by_github_event_name() {
    let cfg = config(Mapping::Knative, &["push", "pull_request"]);
    assert!(cfg.event_types.allows("push"));
    assert!(!cfg.event_types.allows("ping"));
    assert!(
        config(Mapping::Knative, &[])
            .event_types
            .allows("anything_new")
    );
}

#[test]
fn a_non_json_body_is_400_at_conversion() {
    let cfg = config(Mapping::Knative, &[]);
    let err = delivery("push", b"not json", "d")
        .verify(&cfg.secret, false)
        .unwrap()
        .to_event(&cfg, now())
        .unwrap_err();
    assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    assert_eq!(err.reason(), "invalid_payload");
}

#[test]
fn during_a_rotation_either_secret_verifies_and_the_signature_is_reported() {
    let mut cfg = config(Mapping::Knative, &[]);
    let previous = b"the old secret".to_vec();
    let body = fixture("push");
    let signed_with = |secret: &[u8]| {
        let mut req = delivery("push", &body, "d");
        req.headers.insert(
            "x-hub-signature-256",
            common::github::sign256(secret, &body).parse().unwrap(),
        );
        req
    };
    // Without the previous secret configured, the old signature is refused.
    assert!(matches!(
        signed_with(&previous).verify_any(&cfg.secrets(), false),
        Err(GithubError::WrongSignature)
    ));
    cfg.previous_secret = herald_sources::github::WebhookSecret::new(previous.clone());
    let old = signed_with(&previous)
        .verify_any(&cfg.secrets(), false)
        .unwrap();
    assert_eq!(old.signature(), common::github::sign256(&previous, &body));
    let new = signed_with(common::github::SECRET)
        .verify_any(&cfg.secrets(), false)
        .unwrap();
    assert_eq!(
        new.signature(),
        common::github::sign256(common::github::SECRET, &body)
    );
    assert!(matches!(
        signed_with(b"neither").verify_any(&cfg.secrets(), false),
        Err(GithubError::WrongSignature)
    ));
}
