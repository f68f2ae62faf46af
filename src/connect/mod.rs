//! Plain Kafka records in and out of timely: other programs' topics, not
//! captured streams.
//!
//! [`source::kafka_source`] reads any topic into a timely stream at times the
//! user's logic picks; [`sink::kafka_sink`] writes a stream of `(key, value)`
//! records to a topic. They use [`crate::log::kafka`] for client
//! configuration and nothing from [`crate::capture`].

pub mod exactly_once;
pub mod sink;
pub mod source;
pub mod status;

pub use status::ConnectorStatus;
