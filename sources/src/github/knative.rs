//! The Knative GitHubSource mapping (SOURCES.md): `dev.knative.source.github.{event}`, the
//! source URL from `spec.ownerAndRepository`, and a subject and extensions per event name.
//! Values from the payload go through [`clean`]: no control characters, bounded length.

use chrono::{DateTime, Utc};
use cloudevents::event::ExtensionValue;
use cloudevents::{Event, EventBuilder, EventBuilderV10};

use super::Verified;
use super::payload::Payload;
use crate::attribute::clean;

pub const TYPE_PREFIX: &str = "dev.knative.source.github.";

/// Which value an extension takes; each is omitted when the payload lacks it.
#[derive(Clone, Copy)]
enum Ext {
    Owner,
    OrgOwner,
    Repository,
    Sender,
    Installation,
    Action,
    /// `{name}` = the text at `path`.
    Text(&'static str, &'static str),
    Bool(&'static str),
    Int(&'static str),
}

use Ext::*;

const REPO: [Ext; 3] = [Owner, Repository, Sender];
const REPO_ACTION: [Ext; 4] = [Owner, Repository, Sender, Action];

/// How the subject is derived.
enum Subject {
    Field(&'static str),
    LastSegment(&'static str),
    PageNames,
    None,
}

fn rule(event: &str) -> (Subject, Vec<Ext>) {
    use Subject::*;
    let with = |base: &[Ext], more: &[Ext]| [base, more].concat();
    match event {
        "check_run" => (Field("check_run.id"), REPO_ACTION.to_vec()),
        "check_suite" => (Field("check_suite.id"), REPO_ACTION.to_vec()),
        "commit_comment" | "issue_comment" => {
            (LastSegment("comment.html_url"), REPO_ACTION.to_vec())
        }
        "create" | "delete" => (Field("ref_type"), with(&REPO, &[Text("ref", "ref")])),
        "deployment" | "deployment_status" => (Field("deployment.id"), REPO.to_vec()),
        "fork" => (Field("forkee.id"), REPO.to_vec()),
        "gollum" => (PageNames, REPO.to_vec()),
        "installation" | "installation_repositories" => {
            (Field("installation.id"), vec![Installation, Sender, Action])
        }
        "issues" => (
            Field("issue.number"),
            with(
                &REPO_ACTION,
                &[
                    Text("label", "label.name"),
                    Text("assignee", "assignee.login"),
                ],
            ),
        ),
        "label" => (
            Field("label.name"),
            with(&REPO_ACTION, &[Text("label", "label.name")]),
        ),
        "member" => (Field("member.id"), REPO_ACTION.to_vec()),
        "membership" => (
            Field("member.id"),
            vec![OrgOwner, Text("scope", "scope"), Sender, Action],
        ),
        "milestone" => (Field("milestone.number"), REPO_ACTION.to_vec()),
        "organization" | "org_block" => (Field("action"), vec![OrgOwner, Sender, Action]),
        "page_build" => (Field("id"), REPO.to_vec()),
        "ping" => (Field("hook_id"), REPO.to_vec()),
        "project" | "project_card" | "project_column" => (Field("action"), REPO_ACTION.to_vec()),
        "public" | "team_add" => (Field("repository.id"), REPO.to_vec()),
        "repository" | "watch" => (Field("repository.id"), REPO_ACTION.to_vec()),
        "pull_request" => (
            Field("pull_request.number"),
            vec![
                Owner,
                Repository,
                Installation,
                Sender,
                Action,
                Int("number"),
                Text("label", "label.name"),
                Text("assignee", "assignee.login"),
            ],
        ),
        "pull_request_review" => (
            Field("review.id"),
            vec![
                Owner,
                Repository,
                Installation,
                Sender,
                Action,
                Text("review", "review.state"),
            ],
        ),
        "pull_request_review_comment" => (
            Field("comment.id"),
            vec![Owner, Repository, Installation, Sender, Action],
        ),
        "push" => (
            LastSegment("compare"),
            vec![
                Owner,
                Repository,
                Installation,
                Sender,
                Text("pusher", "pusher.name"),
                Text("ref", "ref"),
                Bool("created"),
                Bool("deleted"),
                Bool("forced"),
            ],
        ),
        "release" => (
            Field("release.tag_name"),
            vec![
                Owner,
                Repository,
                Installation,
                Sender,
                Action,
                Text("release", "release.name"),
            ],
        ),
        "repository_vulnerability_alert" => (Field("alert.id"), vec![Action]),
        "security_advisory" => (Field("security_advisory.ghsa_id"), vec![Action]),
        "status" => (
            Field("sha"),
            with(
                &REPO,
                &[
                    Text("state", "state"),
                    Text("name", "name"),
                    Text("context", "context"),
                ],
            ),
        ),
        "team" => (Field("team.id"), vec![Sender, Action]),
        // Every other name (workflow_run, merge_group, ...): no subject, the common fields.
        _ => (None, REPO_ACTION.to_vec()),
    }
}

pub(super) fn to_event(
    d: &Verified,
    p: &Payload,
    source: &str,
    now: DateTime<Utc>,
    max: usize,
) -> Event {
    let (subject, exts) = rule(d.event_name());
    let subject = match subject {
        Subject::Field(path) => p.text(path),
        Subject::LastSegment(path) => p.last_segment(path),
        Subject::PageNames => {
            let names: Vec<String> = p
                .get("pages")
                .and_then(|v| v.as_array())
                .map(|pages| {
                    pages
                        .iter()
                        .filter_map(|pg| pg.get("page_name")?.as_str())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            (!names.is_empty()).then(|| names.join(","))
        }
        Subject::None => None,
    }
    .map(|s| clean(&s, max));
    let mut builder = EventBuilderV10::new()
        .id(d.delivery_id())
        .ty(format!("{TYPE_PREFIX}{}", d.event_name()))
        .source(source)
        .time(now)
        .data(
            "application/json",
            cloudevents::Data::Binary(d.json_body().to_vec()),
        );
    if let Some(subject) = subject {
        builder = builder.subject(subject);
    }
    let mut event = builder.build().expect("id, type, source are set");
    for ext in exts {
        let (name, value) = match ext {
            Owner => (
                "owner",
                p.text("repository.owner.login").map(ExtensionValue::String),
            ),
            OrgOwner => (
                "owner",
                p.text("organization.login").map(ExtensionValue::String),
            ),
            Repository => (
                "repository",
                p.text("repository.name").map(ExtensionValue::String),
            ),
            Sender => ("sender", p.text("sender.login").map(ExtensionValue::String)),
            Installation => (
                "installation",
                p.text("installation.id").map(ExtensionValue::String),
            ),
            Action => ("action", p.text("action").map(ExtensionValue::String)),
            Text(name, path) => (name, p.text(path).map(ExtensionValue::String)),
            Bool(name) => (name, p.boolean(name).map(ExtensionValue::Boolean)),
            Int(name) => (name, p.integer(name).map(ExtensionValue::Integer)),
        };
        let value = match value {
            Some(ExtensionValue::String(text)) => Some(ExtensionValue::String(clean(&text, max))),
            other => other,
        };
        if let Some(value) = value {
            event.set_extension(name, value);
        }
    }
    event
}
