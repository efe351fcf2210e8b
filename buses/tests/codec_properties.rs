//! Property tests of the bus codecs: every event up to the ingress limits comes back exactly as
//! it went in (the log codec, the Kafka and the NATS binding), and no input, however hostile,
//! makes a decoder panic. The log codec, whose records are delimited by their container, also
//! rejects every strict prefix and every record with bytes after it.

#[path = "support/arbitrary_event.rs"]
mod arbitrary_event;

use arbitrary_event::event;
use herald_buses::codec;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_log_codec_round_trips_every_event(event in event()) {
        let bytes = codec::encode_to_bytes(&event).unwrap();
        prop_assert_eq!(codec::decode(&bytes).unwrap(), event);
    }

    #[test]
    fn the_log_codec_rejects_strict_prefixes_and_trailing_bytes(
        event in event(),
        cut in any::<prop::sample::Index>(),
        garbage in proptest::collection::vec(any::<u8>(), 1..16),
    ) {
        let bytes = codec::encode_to_bytes(&event).unwrap();
        let len = cut.index(bytes.len());
        prop_assert!(codec::decode(&bytes[..len]).is_err(), "prefix of {} bytes decoded", len);
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(&garbage);
        prop_assert!(codec::decode(&longer).is_err());
    }

    #[test]
    fn the_log_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::decode(&bytes);
    }

    /// Arbitrary bytes rarely get past the version byte: flipped bytes of valid records reach
    /// every field.
    #[test]
    fn the_log_decoder_never_panics_on_damaged_records(
        event in event(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = codec::encode_to_bytes(&event).unwrap().to_vec();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = codec::decode(&bytes);
    }
}

#[cfg(feature = "kafka")]
mod kafka {
    use super::*;
    use herald_buses::kafka::codec::{self as kafka_codec, RawHeader};

    /// Header names a hostile producer may write: the binding's, with any suffix, and any bytes.
    fn header_name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::sample::select(vec![
                "ce_specversion",
                "ce_id",
                "ce_source",
                "ce_type",
                "ce_time",
                "ce_dataschema",
                "content-type",
                "herald-data",
                "herald-ext-types",
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
            "ce[_é€]?[a-z0-9é]{0,6}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..8),
        ]
    }

    fn header_value() -> impl Strategy<Value = Option<Vec<u8>>> {
        proptest::option::of(prop_oneof![
            proptest::sample::select(vec![
                "1.0",
                "0.3",
                "json",
                "text",
                "binary",
                "a=integer",
                "a=boolean,b",
                "application/cloudevents+json",
                "2020-01-01T00:00:00Z",
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
            proptest::collection::vec(any::<u8>(), 0..16),
        ])
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn the_kafka_codec_round_trips_every_event(event in event()) {
            let record = kafka_codec::encode(&event).unwrap();
            let decoded = kafka_codec::decode(&record.raw_headers(), record.value.as_deref());
            prop_assert_eq!(decoded.unwrap(), event);
        }

        #[test]
        fn the_kafka_decoder_never_panics(
            headers in proptest::collection::vec((header_name(), header_value()), 0..12),
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        ) {
            let raw: Vec<_> = headers
                .iter()
                .map(|(key, value)| RawHeader { key, value: value.as_deref() })
                .collect();
            let _ = kafka_codec::decode(&raw, value.as_deref());
        }
    }
}

#[cfg(feature = "nats")]
mod nats {
    use super::*;
    use async_nats::HeaderMap;
    use herald_buses::nats::codec as nats_codec;

    /// Names the NATS client can carry (printable ASCII without `:`).
    fn header_name() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(vec![
                "ce-specversion",
                "ce-id",
                "ce-source",
                "ce-type",
                "ce-time",
                "Content-Type",
                "Herald-Data",
                "Herald-Ext-Types",
            ])
            .prop_map(str::to_owned),
            "[!-9;-~]{1,12}",
        ]
    }

    /// Values without line breaks (the client refuses those), escapes and quotes included.
    fn header_value() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(vec![
                "1.0",
                "0.3",
                "json",
                "text",
                "none",
                "a=integer",
                "%",
                "%zz",
                "%C3",
                "\"a\\",
                "application/cloudevents+json",
            ])
            .prop_map(str::to_owned),
            "[^\r\n]{0,16}",
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn the_nats_codec_round_trips_every_event(event in event()) {
            let (headers, payload) = nats_codec::encode(&event).unwrap();
            prop_assert_eq!(nats_codec::decode(Some(&headers), &payload).unwrap(), event);
        }

        #[test]
        fn the_nats_decoder_never_panics(
            pairs in proptest::collection::vec((header_name(), header_value()), 0..12),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut headers = HeaderMap::new();
            for (name, value) in &pairs {
                headers.append(name.as_str(), value.as_str());
            }
            let _ = nats_codec::decode(Some(&headers), &payload);
        }
    }
}

#[cfg(feature = "pubsub")]
mod pubsub {
    use super::*;
    use herald_buses::pubsub::codec as pubsub_codec;
    use std::collections::BTreeMap;

    /// Attribute names Herald reads and any others (Pub/Sub attributes are UTF-8 strings).
    fn attribute_name() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(vec![
                "ce-specversion",
                "CE-ID",
                "ce-source",
                "ce-type",
                "ce-time",
                "ce-datacontenttype",
                "Content-Type",
                "content-type",
                "herald-data",
                "herald-ext-types",
            ])
            .prop_map(str::to_owned),
            ".{1,12}",
        ]
    }

    fn attribute_value() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(vec![
                "1.0",
                "0.3",
                "json",
                "text",
                "none",
                "a=integer",
                "x=boolean",
                "application/cloudevents+json",
                "application/cloudevents+avro",
            ])
            .prop_map(str::to_owned),
            ".{0,16}",
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn the_pubsub_codec_round_trips_every_event(event in event()) {
            let message = pubsub_codec::encode(&event).unwrap();
            prop_assert_eq!(pubsub_codec::decode(&message.attributes, &message.data).unwrap(), event);
        }

        #[test]
        fn the_pubsub_decoder_never_panics(
            pairs in proptest::collection::vec((attribute_name(), attribute_value()), 0..12),
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let attributes: BTreeMap<String, String> = pairs.into_iter().collect();
            let _ = pubsub_codec::decode(&attributes, &data);
        }
    }
}
