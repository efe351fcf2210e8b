//! The embedded bus (in progress).
