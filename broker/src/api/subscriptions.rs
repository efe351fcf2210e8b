//! The CloudEvents Subscriptions API (`/subscriptions`), mapped onto Herald triggers.
//!
//! A subscription is stored as a Trigger named `sub-{id}` in the namespace of the broker it
//! listens to (`config.broker`, `namespace/name`, default `default/default`), with the
//! subscription as the client gave it in the annotation `herald.dev/subscription`. Its
//! `types` and `source` become exact filters, its `filters` the trigger's `filters` (the
//! spec's `sql` dialect is Knative's `cesql`), its `sink` the subscriber. Only the `HTTP`
//! protocol (method `POST`) is served; what Herald cannot honour is refused with 400.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Api;
use super::kinds::{self, Kind};
use super::status::ApiError;

/// The annotation that holds the subscription as the client gave it (with its id).
pub const SUBSCRIPTION_ANNOTATION: &str = "herald.dev/subscription";

fn trigger_kind() -> &'static Kind {
    kinds::by_plural("eventing.knative.dev", "v1", "triggers").expect("triggers are served")
}

/// A Subscriptions API error: status and `{"error": message}`.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn from_api_error(e: ApiError) -> Response {
    let status = match e.code {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        other => other,
    };
    refuse(status, e.message)
}

/// Checks a subscription request and turns it into the trigger that realizes it.
pub fn to_trigger(id: &str, request: &Value) -> Result<(String, Value), String> {
    let Value::Object(fields) = request else {
        return Err("the body must be a JSON object (a subscription)".into());
    };
    const KNOWN: [&str; 9] = [
        "id",
        "source",
        "types",
        "config",
        "filters",
        "sink",
        "sinkcredential",
        "protocol",
        "protocolsettings",
    ];
    if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!("unknown property {unknown:?}"));
    }
    match fields.get("protocol").and_then(Value::as_str) {
        Some("HTTP") => {}
        Some(other) => return Err(format!("protocol {other:?} is not supported (HTTP is)")),
        None => return Err("protocol is required (HTTP)".into()),
    }
    if let Some(settings) = fields.get("protocolsettings") {
        let Value::Object(settings) = settings else {
            return Err("protocolsettings must be an object".into());
        };
        for (key, value) in settings {
            match (key.as_str(), value.as_str()) {
                ("method", Some(m)) if m.eq_ignore_ascii_case("POST") => {}
                ("method", _) => {
                    return Err("protocolsettings.method: only POST is supported".into());
                }
                _ => return Err(format!("protocolsettings.{key} is not supported")),
            }
        }
    }
    if fields.contains_key("sinkcredential") {
        return Err("sinkcredential is not supported".into());
    }
    let sink = fields
        .get("sink")
        .and_then(Value::as_str)
        .ok_or("sink is required (an http or https URL)")?;
    match url::Url::parse(sink) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {}
        _ => {
            return Err(format!(
                "sink {sink:?} is not an absolute http or https URL"
            ));
        }
    }
    let (namespace, broker) = broker_of(fields.get("config"))?;
    let mut filters = Vec::new();
    if let Some(source) = fields.get("source") {
        match source.as_str() {
            Some(s) if !s.is_empty() => filters.push(json!({ "exact": { "source": s } })),
            _ => return Err("source must be a non-empty string".into()),
        }
    }
    if let Some(types) = fields.get("types") {
        let types = types
            .as_array()
            .ok_or("types must be an array of strings")?;
        let mut any = Vec::new();
        for t in types {
            match t.as_str() {
                Some(t) if !t.is_empty() => any.push(json!({ "exact": { "type": t } })),
                _ => return Err("every entry of types must be a non-empty string".into()),
            }
        }
        if !any.is_empty() {
            filters.push(json!({ "any": any }));
        }
    }
    if let Some(given) = fields.get("filters") {
        let given = given.as_array().ok_or("filters must be an array")?;
        for (i, filter) in given.iter().enumerate() {
            filters.push(to_knative_filter(filter).map_err(|e| format!("filters[{i}]: {e}"))?);
        }
    }
    let mut stored = request.clone();
    stored["id"] = json!(id);
    let trigger = json!({
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {
            "name": format!("sub-{id}"),
            "namespace": namespace,
            "annotations": { SUBSCRIPTION_ANNOTATION: stored.to_string() },
        },
        "spec": {
            "broker": broker,
            "subscriber": { "uri": sink },
            "filters": filters,
        },
    });
    Ok((namespace, trigger))
}

fn broker_of(config: Option<&Value>) -> Result<(String, String), String> {
    let Some(config) = config else {
        return Ok(("default".into(), "default".into()));
    };
    let Value::Object(config) = config else {
        return Err("config must be an object".into());
    };
    if let Some(unknown) = config.keys().find(|k| *k != "broker") {
        return Err(format!(
            "config.{unknown} is not supported (config.broker is)"
        ));
    }
    match config.get("broker").map(|b| b.as_str()) {
        None => Ok(("default".into(), "default".into())),
        Some(Some(text)) => match text.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok((ns.into(), name.into())),
            None if !text.is_empty() => Ok(("default".into(), text.into())),
            _ => Err(format!("config.broker {text:?} is not namespace/name")),
        },
        Some(None) => Err("config.broker must be a string".into()),
    }
}

/// One filter of the spec's dialects as Knative writes it (`sql` is `cesql`); unknown
/// dialects and empty attribute names or values are refused.
fn to_knative_filter(filter: &Value) -> Result<Value, String> {
    let Value::Object(map) = filter else {
        return Err("a filter must be an object with one dialect".into());
    };
    if map.len() != 1 {
        return Err(format!(
            "a filter has exactly one dialect, this one has {}",
            map.len()
        ));
    }
    let (dialect, body) = map.iter().next().expect("one entry");
    match dialect.as_str() {
        "exact" | "prefix" | "suffix" => {
            let Value::Object(attributes) = body else {
                return Err(format!("{dialect} takes an object of attribute: value"));
            };
            if attributes.is_empty() {
                return Err(format!("{dialect} names no attribute"));
            }
            for (name, value) in attributes {
                match value.as_str() {
                    Some(v) if !name.is_empty() && !v.is_empty() => {}
                    _ => {
                        return Err(format!(
                            "{dialect}: attribute names and values must be non-empty strings ({name:?})"
                        ));
                    }
                }
            }
            Ok(json!({ dialect: body }))
        }
        "all" | "any" => {
            let nested = body
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| format!("{dialect} takes a non-empty array of filters"))?;
            let nested: Result<Vec<Value>, String> = nested.iter().map(to_knative_filter).collect();
            Ok(json!({ dialect: nested? }))
        }
        "not" => Ok(json!({ "not": to_knative_filter(body)? })),
        "sql" => {
            let expression = body.as_str().ok_or("sql takes a CESQL expression string")?;
            cesql::Expression::compile(expression).map_err(|e| format!("sql: {e}"))?;
            Ok(json!({ "cesql": expression }))
        }
        other => Err(format!(
            "filter dialect {other:?} is not supported (exact, prefix, suffix, all, any, not, sql are)"
        )),
    }
}

/// The subscription a trigger realizes, if it is one.
fn subscription_of(trigger: &Value) -> Option<Value> {
    let text = trigger["metadata"]["annotations"][SUBSCRIPTION_ANNOTATION].as_str()?;
    serde_json::from_str(text).ok()
}

fn all_subscriptions(api: &Api) -> Vec<(Value, Value)> {
    let (triggers, _) = api.registry.list(trigger_kind(), None);
    triggers
        .into_iter()
        .filter_map(|t| subscription_of(&t).map(|s| (s, t)))
        .collect()
}

fn find(api: &Api, id: &str) -> Result<(Value, Value), Box<Response>> {
    all_subscriptions(api)
        .into_iter()
        .find(|(s, _)| s["id"] == id)
        .ok_or_else(|| {
            Box::new(refuse(
                StatusCode::NOT_FOUND,
                format!("no subscription {id:?}"),
            ))
        })
}

async fn body(api: &Api, request: Request) -> Result<Value, Box<Response>> {
    let bytes = axum::body::to_bytes(request.into_body(), api.options.max_body)
        .await
        .map_err(|_| {
            Box::new(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than {} bytes (--api-max-body)",
                    api.options.max_body
                ),
            ))
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Box::new(refuse(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {e}"),
        ))
    })
}

pub(super) async fn query(State(api): State<Arc<Api>>) -> Response {
    let subscriptions: Vec<Value> = all_subscriptions(&api)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    Json(Value::Array(subscriptions)).into_response()
}

pub(super) async fn create(State(api): State<Arc<Api>>, request: Request) -> Response {
    let subscription = match body(&api, request).await {
        Ok(value) => value,
        Err(response) => return *response,
    };
    // A proposed id is ignored (the spec lets the manager assign one).
    let id = uuid::Uuid::new_v4().to_string();
    let (namespace, trigger) = match to_trigger(&id, &subscription) {
        Ok(made) => made,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    match api
        .registry
        .create(trigger_kind(), &namespace, trigger)
        .await
    {
        Ok(created) => {
            let realized = subscription_of(&created).unwrap_or_default();
            let mut response = (StatusCode::CREATED, Json(realized)).into_response();
            if let Ok(location) = HeaderValue::from_str(&format!("/subscriptions/{id}")) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(e) => from_api_error(e),
    }
}

pub(super) async fn retrieve(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Response {
    match find(&api, &id) {
        Ok((subscription, _)) => Json(subscription).into_response(),
        Err(response) => *response,
    }
}

pub(super) async fn update(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (_, current) = match find(&api, &id) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let subscription = match body(&api, request).await {
        Ok(value) => value,
        Err(response) => return *response,
    };
    if let Some(given) = subscription.get("id")
        && given != &json!(id)
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("the body's id {given} is not {id:?}"),
        );
    }
    let (namespace, trigger) = match to_trigger(&id, &subscription) {
        Ok(made) => made,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    if current["metadata"]["namespace"] != json!(namespace) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "config.broker cannot move a subscription to another namespace",
        );
    }
    let name = format!("sub-{id}");
    match api
        .registry
        .replace(trigger_kind(), &namespace, &name, trigger)
        .await
    {
        Ok(updated) => Json(subscription_of(&updated).unwrap_or_default()).into_response(),
        Err(e) => from_api_error(e),
    }
}

pub(super) async fn delete(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Response {
    let (subscription, trigger) = match find(&api, &id) {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let namespace = trigger["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    match api
        .registry
        .delete(trigger_kind(), &namespace, &format!("sub-{id}"))
        .await
    {
        Ok(_) => Json(subscription).into_response(),
        Err(e) => from_api_error(e),
    }
}

pub(super) async fn features() -> Response {
    allow("GET,POST,OPTIONS")
}

pub(super) async fn features_of_one() -> Response {
    allow("GET,PUT,DELETE,OPTIONS")
}

fn allow(methods: &'static str) -> Response {
    let mut response = StatusCode::OK.into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(methods));
    response
}
