//! The embedded log's event codec on arbitrary bytes: an event or an error, never a panic; an
//! event that decodes encodes again, and that encoding decodes to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = herald_buses::codec::decode(data) {
        let again = herald_buses::codec::encode_to_bytes(&event).expect("a decoded event encodes");
        let back = herald_buses::codec::decode(&again).expect("its encoding decodes");
        assert_eq!(back, event);
    }
});
