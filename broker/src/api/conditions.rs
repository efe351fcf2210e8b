//! The `status` of an object: what the running broker reports through [`Apply::status`].

use serde_json::{Value, json};

use super::kinds::Kind;
use crate::live::Apply;

/// The `status` Herald reports for `object`.
pub fn status_of(apply: &dyn Apply, kind: &Kind, object: &Value) -> Value {
    let meta = &object["metadata"];
    let (namespace, name) = (
        meta["namespace"].as_str().unwrap_or("default"),
        meta["name"].as_str().unwrap_or_default(),
    );
    let found = apply.status().into_iter().find(|s| {
        s.group == kind.group && s.kind == kind.kind && s.namespace == namespace && s.name == name
    });
    let mut status = json!({ "observedGeneration": meta["generation"] });
    let Some(found) = found else {
        status["conditions"] = json!([{
            "type": "Ready",
            "status": "Unknown",
            "reason": "NotRunning",
            "message": "Herald reports no state for this resource yet",
        }]);
        return status;
    };
    let conditions: Vec<Value> = found
        .conditions
        .iter()
        .map(|c| {
            let mut condition = json!({ "type": c.kind, "status": c.status });
            if let Some(reason) = &c.reason {
                condition["reason"] = json!(reason);
            }
            if let Some(message) = &c.message {
                condition["message"] = json!(message);
            }
            condition
        })
        .collect();
    status["conditions"] = json!(conditions);
    if let Some(url) = found.address {
        status["address"] = json!({ "url": url });
    }
    status
}
