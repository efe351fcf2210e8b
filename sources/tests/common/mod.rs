//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod fake_apiserver;
pub mod github;
pub mod schema;
