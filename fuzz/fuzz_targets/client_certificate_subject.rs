//! The subject of an mTLS client certificate (`herald::listener::identity_of`): any bytes
//! give an identity or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(identity) = herald::listener::identity_of(data) {
        assert!(!identity.subject.is_empty());
    }
});
