//! The HTTP binding's decoder (binary, structured and batch mode) on arbitrary headers and
//! bodies: it returns events or an error, never panics.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Request {
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fuzz_target!(|request: Request| {
    let mut headers = HeaderMap::new();
    for (name, value) in request.headers {
        // What hyper would hand over: only valid names and values reach the decoder.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            headers.append(name, value);
        }
    }
    let _ = herald::binding::decode::decode(&headers, Bytes::from(request.body));
});
