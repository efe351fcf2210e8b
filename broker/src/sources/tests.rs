//! Sources wired into the broker.
