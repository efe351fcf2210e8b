//! Herald.
