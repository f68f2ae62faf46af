//! Plain Kafka records in and out of timely: other programs' topics, not
//! captured streams.
//!
//! [`source::KafkaSource::kafka_source`] reads any topic into a timely stream at times the
//! user's logic picks; [`sink::KafkaSink::kafka_sink`] writes a stream of `(key, value)`
//! records to a topic (at least once). [`transactional`] joins them into a
//! pipeline whose output survives being killed at any moment: a
//! transactional sink whose commits carry the source offsets
//! ([`source::KafkaSource::kafka_source_exactly_once`]). Each returns a [`crate::status::Status`]:
//! how it fails is how a capture or replay does (`connect/status.rs`).
//! They use [`crate::log::kafka`] for client configuration and, from
//! [`crate::capture`], only the failure recording and the collective steps.

pub mod sink;
pub mod source;
mod status;
pub mod transactional;
