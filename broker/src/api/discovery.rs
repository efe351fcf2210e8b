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

/// The OpenAPI v3 index: one document per group-version.
pub async fn openapi_v3() -> Json<Value> {
    let mut paths = serde_json::Map::new();
    for (group, versions) in kinds::groups() {
        for version in versions {
            paths.insert(
                format!("apis/{group}/{version}"),
                json!({ "serverRelativeURL": format!("/openapi/v3/apis/{group}/{version}") }),
            );
        }
    }
    Json(json!({ "paths": paths }))
}

/// A group-version's OpenAPI v3 document: one schema per kind that keeps unknown fields, so
/// kubectl's client-side validation passes everything through and the API validates (422
/// naming the field).
pub async fn openapi_v3_group(
    Path((group, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let mut schemas = serde_json::Map::new();
    let mut paths = serde_json::Map::new();
    for k in KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
    {
        // kubectl validates on the server (fieldValidation=Strict) when a kind's PATCH
        // operation lists that parameter; otherwise it wants Swagger 2.0 in protobuf.
        let gvk = json!({ "group": k.group, "version": k.version, "kind": k.kind });
        let operation = |action: &str| {
            json!({
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [
                    { "name": "fieldValidation", "in": "query", "schema": { "type": "string" } }
                ],
                "responses": { "200": { "description": "OK" } },
            })
        };
        paths.insert(
            format!(
                "/apis/{}/{}/namespaces/{{namespace}}/{}/{{name}}",
                k.group, k.version, k.plural
            ),
            json!({ "patch": operation("patch"), "put": operation("put") }),
        );
        paths.insert(
            format!(
                "/apis/{}/{}/namespaces/{{namespace}}/{}",
                k.group, k.version, k.plural
            ),
            json!({ "post": operation("post") }),
        );
        let reversed: Vec<&str> = k.group.split('.').rev().collect();
        let open = json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true });
        schemas.insert(
            format!("{}.{}.{}", reversed.join("."), k.version, k.kind),
            json!({
                "type": "object",
                "x-kubernetes-group-version-kind": [
                    { "group": k.group, "version": k.version, "kind": k.kind }
                ],
                "properties": {
                    "apiVersion": { "type": "string" },
                    "kind": { "type": "string" },
                    "metadata": open,
                    "spec": open,
                    "status": open,
                },
            }),
        );
    }
    if schemas.is_empty() {
        return Err(ApiError::not_found(
            "groupversions",
            &format!("{group}/{version}"),
        ));
    }
    Ok(Json(json!({
        "openapi": "3.0.0",
        "info": { "title": "Herald", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": { "schemas": schemas },
    })))
}
