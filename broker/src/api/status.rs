//! Kubernetes `Status` objects: the body of every error the API answers, and of a delete.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An API error, answered as a `Status` with `reason` as Kubernetes names it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: StatusCode,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, ...
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status (`name`, `kind`, `causes`), when there are any.
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found(plural: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{plural} {name:?} not found"),
        )
        .with_details(json!({ "name": name, "kind": plural }))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }

    /// 422 naming the offending field.
    pub fn invalid(kind: &str, name: &str, field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let summary = if field.is_empty() {
            format!("{kind} {name:?} is invalid: {message}")
        } else {
            format!("{kind} {name:?} is invalid: {field}: {message}")
        };
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", summary).with_details(json!({
            "name": name,
            "kind": kind,
            "causes": [{ "reason": "FieldValueInvalid", "field": field, "message": message }],
        }))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code, Json(self.to_status())).into_response()
    }
}

/// The `Status` a successful delete answers.
pub fn deleted(kind: &str, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": { "name": name, "kind": kind, "uid": uid },
    })
}
