//! The NATS binding's decoder on arbitrary messages (headers as the client can parse them):
//! an event or an error, never a panic.
#![no_main]

use arbitrary::Arbitrary;
use async_nats::HeaderMap;
use herald_buses::nats::codec::decode;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Message {
    headers: Vec<(String, String)>,
    payload: Vec<u8>,
}

fuzz_target!(|message: Message| {
    let mut headers = HeaderMap::new();
    for (name, value) in &message.headers {
        // The client accepts (and its parser yields) only these names and values.
        let name_ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic() && c != ':');
        if name_ok && !value.contains(['\r', '\n']) {
            headers.append(name.as_str(), value.as_str());
        }
    }
    let _ = decode(Some(&headers), &message.payload);
});
