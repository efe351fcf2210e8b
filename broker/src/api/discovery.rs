//! What kubectl asks before it touches a resource: the server version, the groups and the
//! resources each serves, and the OpenAPI documents.

use axum::Json;
use axum::extract::Path;
use serde_json::{Value, json};

use super::kinds::{self, KINDS};
use super::status::ApiError;

/// The Kubernetes version whose API shape Herald follows (kubectl warns on a large skew).
const KUBE_MAJOR: &str = "1";
const KUBE_MINOR: &str = "32";

pub async fn version() -> Json<Value> {
    Json(json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0-herald.{}", env!("CARGO_PKG_VERSION")),
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }))
}

/// The core group: Herald serves none of its resources.
pub async fn core() -> Json<Value> {
    Json(json!({ "kind": "APIVersions", "versions": [] }))
}

fn group_json(name: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v }))
        .collect();
    json!({
        "name": name,
        "versions": versions,
        "preferredVersion": versions[0],
    })
}

pub async fn groups() -> Json<Value> {
    let groups: Vec<Value> = kinds::groups()
        .iter()
        .map(|(name, versions)| group_json(name, versions))
        .collect();
    Json(json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }))
}

pub async fn group(Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let groups = kinds::groups();
    let (name, versions) = groups
        .iter()
        .find(|(g, _)| *g == name)
        .ok_or_else(|| ApiError::not_found("groups", &name))?;
    let mut group = group_json(name, versions);
    group["kind"] = json!("APIGroup");
    group["apiVersion"] = json!("v1");
    Ok(Json(group))
}

pub async fn resources(
    Path((group, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let resources: Vec<Value> = KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .map(|k| {
            json!({
                "name": k.plural,
                "singularName": k.singular,
                "namespaced": true,
                "kind": k.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                "shortNames": k.short_names,
                "categories": k.categories,
            })
        })
        .collect();
    if resources.is_empty() {
        return Err(ApiError::not_found(
            "groupversions",
            &format!("{group}/{version}"),
        ));
    }
    Ok(Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{group}/{version}"),
        "resources": resources,
    })))
}

/// A Swagger 2.0 document without definitions: kubectl then has no schema for Herald's kinds
/// and validates nothing client-side (the API validates) and uses JSON merge patch.
pub async fn openapi_v2() -> Json<Value> {
    Json(json!({
        "swagger": "2.0",
        "info": { "title": "Herald", "version": env!("CARGO_PKG_VERSION") },
        "paths": {},
        "definitions": {},
    }))
}

/// The OpenAPI v3 index: no group documents (see [`openapi_v2`]).
pub async fn openapi_v3() -> Json<Value> {
    Json(json!({ "paths": {} }))
}
