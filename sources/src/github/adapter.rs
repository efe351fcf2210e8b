//! The CloudEvents GitHub adapter mapping (`spec/cloudevents/github-adapter.md`):
//! `com.github.{event}[.{qualifier}]`, the payload's own URLs as `source`, payload timestamps
//! as `time`.
//!
//! Where the spec text is open or inconsistent, Herald decides: `status` appends the `state`
//! (the spec's own suggestion), `repository_dispatch`/`repository_ruleset` get the `.` the
//! other rows have, a missing source URL falls back to the Knative source URL, and a missing
//! timestamp to the receive time (as the spec says for null values). Values from the payload
//! (the type's qualifier, the subject) go through [`clean`], the source URL through
//! [`uri_reference`].

use chrono::{DateTime, Utc};
use cloudevents::{Event, EventBuilder, EventBuilderV10};

use super::Verified;
use super::payload::Payload;
use crate::attribute::{clean, uri_reference};

pub const TYPE_PREFIX: &str = "com.github.";

/// What follows `com.github.{event}` in the type.
#[derive(Clone, Copy)]
enum Qualifier {
    Action,
    Field(&'static str),
    /// `membership`: `{scope}.{action}`.
    ScopeAction,
    None,
}

struct Row {
    qualifier: Qualifier,
    source: &'static str,
    subject: Option<&'static str>,
    /// Tried in order; the first present timestamp wins, else the receive time.
    time: &'static [&'static str],
}

const fn row(
    qualifier: Qualifier,
    source: &'static str,
    subject: Option<&'static str>,
    time: &'static [&'static str],
) -> Row {
    Row {
        qualifier,
        source,
        subject,
        time,
    }
}

fn lookup(event: &str) -> Row {
    use Qualifier::{Action as A, Field as F, None as N, ScopeAction};
    const R: &str = "repository.url";
    const OWNER: &str = "repository.owner.url";
    match event {
        "branch_protection_configuration" | "custom_property_values" => row(A, R, None, &[]),
        "branch_protection_rule" => row(A, R, Some("rule.id"), &["rule.updated_at"]),
        "check_run" => row(
            A,
            R,
            Some("check_run.id"),
            &["check_run.completed_at", "check_run.started_at"],
        ),
        "check_suite" => row(A, R, Some("check_suite.id"), &["check_suite.updated_at"]),
        "code_scanning_alert" | "secret_scanning_alert" | "secret_scanning_alert_location" => row(
            A,
            R,
            Some("alert.number"),
            &["alert.updated_at", "alert.created_at"],
        ),
        "commit_comment" => row(
            A,
            "comment.url",
            Some("comment.id"),
            &["comment.updated_at"],
        ),
        "content_reference" => row(A, R, Some("content_reference.id"), &[]),
        "create" | "delete" => row(F("ref_type"), R, Some("ref"), &[]),
        "custom_property" => row(A, R, Some("definition.property_name"), &[]),
        "dependabot_alert" | "repository_vulnerability_alert" => row(A, R, Some("alert.id"), &[]),
        "deploy_key" => row(A, R, Some("key.id"), &["key.deleted_at", "key.created_at"]),
        "deployment" => row(N, R, Some("deployment.id"), &["deployment.updated_at"]),
        "deployment_protection_rule" => row(A, "deployment.url", Some("deployment.id"), &[]),
        "deployment_review" => row(A, "deployment.url", Some("workflow_run.id"), &[]),
        "deployment_status" => row(
            F("deployment_status.state"),
            "deployment.url",
            Some("deployment_status.url"),
            &["deployment_status.updated_at"],
        ),
        "discussion" => row(A, R, Some("discussion.id"), &[]),
        "discussion_comment" => row(A, R, Some("discussion.id"), &["comment.updated_at"]),
        "fork" => row(N, R, Some("forkee.url"), &["forkee.created_at"]),
        "github_app_authorization" => row(N, "sender.url", None, &[]),
        "gollum" => row(N, R, None, &[]),
        "installation" | "installation_repositories" => row(
            A,
            "installation.account.url",
            Some("installation.id"),
            &["installation.updated_at"],
        ),
        "installation_target" => row(A, "installation.account.url", Some("installation.id"), &[]),
        "issue_comment" => row(A, "issue.url", Some("comment.id"), &["comment.updated_at"]),
        "issues" => row(A, R, Some("issue.number"), &["issue.updated_at"]),
        "label" => row(A, R, Some("label.name"), &[]),
        "marketplace_purchase" => row(
            A,
            "sender.url",
            Some("marketplace_purchase.account.login"),
            &["effective_date"],
        ),
        "member" => row(A, R, Some("member.login"), &[]),
        "membership" => row(ScopeAction, "team.url", Some("member.login"), &[]),
        "merge_group" => row(A, R, Some("merge_group.head_ref"), &[]),
        "meta" => row(A, R, Some("hook_id"), &["hook.updated_at"]),
        "milestone" => row(A, R, Some("milestone.number"), &["milestone.updated_at"]),
        "organization" => row(A, "organization.url", Some("membership.user.login"), &[]),
        "org_block" => row(A, "organization.url", Some("blocked_user.login"), &[]),
        "package" => row(
            A,
            R,
            Some("package.id"),
            &["package.updated_at", "package.created_at"],
        ),
        "page_build" => row(N, R, Some("build.url"), &["pusher.updated_at"]),
        "project_card" => row(A, R, Some("project_card.id"), &["project_card.updated_at"]),
        "project_column" => row(
            A,
            R,
            Some("project_column.id"),
            &["project_column.updated_at"],
        ),
        "project" => row(A, R, Some("project.id"), &["project.updated_at"]),
        "projects_v2" => row(A, R, Some("projects_v2.id"), &["projects_v2.updated_at"]),
        "projects_v2_item" => row(
            A,
            R,
            Some("projects_v2_item.id"),
            &["projects_v2_item.updated_at"],
        ),
        "projects_v2_status_update" => row(
            A,
            R,
            Some("projects_v2_status_update.id"),
            &["projects_v2_status_update.updated_at"],
        ),
        "public" | "repository_import" => row(
            N,
            OWNER,
            Some("repository.name"),
            &["repository.updated_at"],
        ),
        "pull_request" => row(A, R, Some("number"), &["pull_request.updated_at"]),
        "pull_request_review" => row(
            A,
            "pull_request.url",
            Some("review.id"),
            &["review.submitted_at"],
        ),
        "pull_request_review_comment" => row(
            A,
            "pull_request.url",
            Some("comment.id"),
            &["pull_request.updated_at"],
        ),
        "pull_request_review_thread" => row(A, "pull_request.url", Some("pull_request.id"), &[]),
        "push" => row(N, R, Some("ref"), &[]),
        "registry_package" => row(
            A,
            R,
            Some("registry_package.html_url"),
            &["registry_package.updated_at"],
        ),
        // "release.*_at based on action": the latest of the release's own timestamps.
        "release" => row(
            A,
            R,
            Some("release.id"),
            &["release.published_at", "release.created_at"],
        ),
        "repository" | "repository_ruleset" => row(
            A,
            OWNER,
            Some("repository.name"),
            &["repository.updated_at"],
        ),
        "repository_advisory" => row(
            A,
            R,
            Some("repository_advisory.ghsa_id"),
            &["repository_advisory.updated_at"],
        ),
        "repository_dispatch" => row(A, OWNER, None, &[]),
        "security_advisory" => row(
            A,
            "",
            Some("security_advisory.ghsa_id"),
            &["security_advisory.updated_at"],
        ),
        "security_and_analysis" => row(N, R, None, &[]),
        "sponsorship" => row(A, R, Some("sponsorship.sponsor.login"), &[]),
        "star" => row(A, R, None, &["starred_at"]),
        "status" => row(F("state"), R, Some("sha"), &["updated_at"]),
        "team" => row(A, R, Some("team.id"), &["updated_at", "team.updated_at"]),
        "team_add" => row(A, R, Some("team.id"), &[]),
        "watch" => row(A, R, None, &[]),
        "workflow_dispatch" => row(N, R, Some("workflow"), &[]),
        "workflow_job" => row(A, R, Some("workflow_job.name"), &[]),
        "workflow_run" => row(A, R, Some("workflow.name"), &[]),
        // Names the spec does not list yet: the common shape.
        _ => row(A, R, None, &[]),
    }
}

pub(super) fn to_event(
    d: &Verified,
    p: &Payload,
    fallback: &str,
    now: DateTime<Utc>,
    max: usize,
) -> Event {
    let event = d.event_name();
    let row = lookup(event);
    let qualifier = match row.qualifier {
        Qualifier::Action => p.text("action"),
        Qualifier::Field(path) => p.text(path),
        Qualifier::ScopeAction => match (p.text("scope"), p.text("action")) {
            (Some(s), Some(a)) => Some(format!("{s}.{a}")),
            (s, a) => s.or(a),
        },
        Qualifier::None => None,
    };
    let ty = match qualifier {
        Some(q) => format!("{TYPE_PREFIX}{event}.{}", clean(&q, max)),
        None => format!("{TYPE_PREFIX}{event}"),
    };
    let source = match row.source {
        "" => "github.com".to_owned(),
        "comment.url" => match (p.text("comment.url"), p.text("comment.commit_id")) {
            (Some(url), Some(sha)) => format!("{url}/{sha}"),
            (url, _) => url.unwrap_or_else(|| fallback.to_owned()),
        },
        "sender.url" if event == "marketplace_purchase" => p
            .text("sender.url")
            .and_then(|u| u.rsplit_once('/').map(|(base, _)| base.to_owned()))
            .unwrap_or_else(|| fallback.to_owned()),
        path => p
            .text(path)
            .or_else(|| p.text("organization.url"))
            .unwrap_or_else(|| fallback.to_owned()),
    };
    // Ingress takes a `source` only as a URI-reference.
    let source = uri_reference(&source, max);
    let time = row.time.iter().find_map(|path| p.time(path)).unwrap_or(now);
    let mut builder = EventBuilderV10::new()
        .id(d.delivery_id())
        .ty(ty)
        .source(source)
        .time(time)
        .data(
            "application/json",
            cloudevents::Data::Binary(d.json_body().to_vec()),
        );
    if let Some(subject) = row.subject.and_then(|path| p.text(path)) {
        builder = builder.subject(clean(&subject, max));
    }
    builder.build().expect("id, type, source are set")
}
