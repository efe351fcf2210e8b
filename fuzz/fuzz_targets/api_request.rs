//! The management API's parsers of request bodies (manifests, merge patches, Subscriptions API
//! requests) and of list selectors on arbitrary input: they answer or refuse, never panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    body: Vec<u8>,
    query: String,
}

fuzz_target!(|input: Input| {
    herald::api::fuzz_request(&input.body, &input.query);
});
