//! The Pub/Sub binding's decoder on arbitrary messages (attributes as Pub/Sub delivers them:
//! UTF-8 names and values): an event or an error, never a panic.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use herald_buses::pubsub::codec::decode;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Message {
    attributes: BTreeMap<String, String>,
    data: Vec<u8>,
}

fuzz_target!(|message: Message| {
    let _ = decode(&message.attributes, &message.data);
});
