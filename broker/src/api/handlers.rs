//! List, get, create, update, patch and delete of one kind's objects.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::kinds::{self, Kind};
use super::selectors::Selectors;
use super::status::{self, ApiError};
use super::{Api, watch};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    pub watch: Option<String>,
    pub resource_version: Option<String>,
    pub field_selector: Option<String>,
    pub label_selector: Option<String>,
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteQuery {
    pub dry_run: Option<String>,
}

type Objects = Path<(String, String, String, String)>;
type Object = Path<(String, String, String, String, String)>;

fn kind(group: &str, version: &str, plural: &str) -> Result<&'static Kind, ApiError> {
    kinds::by_plural(group, version, plural).ok_or_else(|| {
        ApiError::not_found("resources", &format!("{group}/{version}/{plural}"))
            .with_details(json!({ "group": group, "kind": plural }))
    })
}

pub async fn list_all(
    State(api): State<Arc<Api>>,
    Path((group, version, plural)): Path<(String, String, String)>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let kind = kind(&group, &version, &plural)?;
    list_or_watch(&api, kind, None, query)
}

pub async fn list(
    State(api): State<Arc<Api>>,
    Path((group, version, namespace, plural)): Objects,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let kind = kind(&group, &version, &plural)?;
    list_or_watch(&api, kind, Some(namespace), query)
}

fn list_or_watch(
    api: &Arc<Api>,
    kind: &'static Kind,
    namespace: Option<String>,
    query: ListQuery,
) -> Result<Response, ApiError> {
    let selectors = Selectors::parse(
        query.field_selector.as_deref(),
        query.label_selector.as_deref(),
    )?;
    if matches!(query.watch.as_deref(), Some("true" | "1")) {
        return watch::start(api, kind, namespace, selectors, &query);
    }
    let (items, revision) = api.registry.list(kind, namespace.as_deref());
    let items: Vec<Value> = items
        .into_iter()
        .filter(|o| selectors.matches(o))
        .map(|o| api.registry.with_status(kind, o))
        .collect();
    Ok(Json(json!({
        "apiVersion": kind.api_version(),
        "kind": format!("{}List", kind.kind),
        "metadata": { "resourceVersion": revision.to_string() },
        "items": items,
    }))
    .into_response())
}

pub async fn get(
    State(api): State<Arc<Api>>,
    Path((group, version, namespace, plural, name)): Object,
) -> Result<Json<Value>, ApiError> {
    let kind = kind(&group, &version, &plural)?;
    let object = api.registry.get(kind, &namespace, &name)?;
    Ok(Json(api.registry.with_status(kind, object)))
}

/// The request body as JSON, at most `--api-max-body` bytes, of a media type in `accepted`.
async fn body(api: &Api, request: Request, accepted: &[&str]) -> Result<(String, Value), ApiError> {
    let media = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !accepted.contains(&media.as_str()) {
        let mut message = format!(
            "content type {media:?} is not supported here; use one of {}",
            accepted.join(", ")
        );
        if media == "application/apply-patch+yaml" {
            message.push_str(
                " (server-side apply is not supported: use kubectl apply without --server-side)",
            );
        }
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        ));
    }
    let bytes = axum::body::to_bytes(request.into_body(), api.options.max_body)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!(
                    "the request body is larger than {} bytes (--api-max-body) or could not be read",
                    api.options.max_body
                ),
            )
        })?;
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    Ok((media, value))
}

fn refuse_dry_run(query: &WriteQuery) -> Result<(), ApiError> {
    match query.dry_run.as_deref() {
        None | Some("") => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "dryRun is not supported: Herald validates and applies in one step",
        )),
    }
}

pub async fn create(
    State(api): State<Arc<Api>>,
    Path((group, version, namespace, plural)): Objects,
    Query(query): Query<WriteQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let kind = kind(&group, &version, &plural)?;
    refuse_dry_run(&query)?;
    let (_, value) = body(&api, request, &["application/json"]).await?;
    let object = api.registry.create(kind, &namespace, value).await?;
    let object = api.registry.with_status(kind, object);
    Ok((StatusCode::CREATED, Json(object)).into_response())
}

pub async fn replace(
    State(api): State<Arc<Api>>,
    Path((group, version, namespace, plural, name)): Object,
    Query(query): Query<WriteQuery>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let kind = kind(&group, &version, &plural)?;
    refuse_dry_run(&query)?;
    let (_, value) = body(&api, request, &["application/json"]).await?;
    let object = api.registry.replace(kind, &namespace, &name, value).await?;
    Ok(Json(api.registry.with_status(kind, object)))
}

const MERGE_PATCH: &str = "application/merge-patch+json";
/// Without a schema for Herald's kinds, a strategic merge patch is a JSON merge patch (lists
/// replaced whole); its `$` directives are refused.
const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";

pub async fn patch(
    State(api): State<Arc<Api>>,
    Path((group, version, namespace, plural, name)): Object,
    Query(query): Query<WriteQuery>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let kind = kind(&group, &version, &plural)?;
    refuse_dry_run(&query)?;
    let (media, value) = body(&api, request, &[MERGE_PATCH, STRATEGIC_MERGE_PATCH]).await?;
    if media == STRATEGIC_MERGE_PATCH
        && let Some(directive) = find_directive(&value)
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "strategic merge patch directive {directive:?} is not supported; send a JSON merge patch ({MERGE_PATCH})"
            ),
        ));
    }
    let object = api.registry.patch(kind, &namespace, &name, value).await?;
    Ok(Json(api.registry.with_status(kind, object)))
}

fn find_directive(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.starts_with('$') {
                Some(k.clone())
            } else {
                find_directive(v)
            }
        }),
        Value::Array(items) => items.iter().find_map(find_directive),
        _ => None,
    }
}

pub async fn delete(
    State(api): State<Arc<Api>>,
    Path((group, version, namespace, plural, name)): Object,
    Query(query): Query<WriteQuery>,
) -> Result<Json<Value>, ApiError> {
    let kind = kind(&group, &version, &plural)?;
    refuse_dry_run(&query)?;
    let object = api.registry.delete(kind, &namespace, &name).await?;
    let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
    Ok(Json(status::deleted(kind.plural, &name, uid)))
}

/// A streamed response body.
pub fn streaming(body: Body) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("static headers are valid")
}
