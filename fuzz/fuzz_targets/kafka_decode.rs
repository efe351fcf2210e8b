//! The Kafka binding's decoder on arbitrary records (header names as raw bytes, as a hostile
//! producer may write them): an event or an error, never a panic.
#![no_main]

use arbitrary::Arbitrary;
use herald_buses::kafka::codec::{RawHeader, decode};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Record {
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    value: Option<Vec<u8>>,
}

fuzz_target!(|record: Record| {
    let headers: Vec<_> = record
        .headers
        .iter()
        .map(|(key, value)| RawHeader {
            key,
            value: value.as_deref(),
        })
        .collect();
    let _ = decode(&headers, record.value.as_deref());
});
