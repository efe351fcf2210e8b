//! The service-account key file parser (`GOOGLE_APPLICATION_CREDENTIALS`) on arbitrary bytes:
//! a key or an error, never a panic.
#![no_main]

use herald_buses::pubsub::auth::ServiceAccountKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = ServiceAccountKey::parse("fuzz.json", bytes);
});
