//! Capture timely dataflow streams into a partitioned log and replay them.
//!
//! A timely computation captures a stream with `capture_into` and an
//! [`EventProducer`]; another computation, with any number of workers,
//! replays it with `replay_into` over [`EventConsumer`]s. Data and progress
//! both travel, so the replayed stream behaves exactly like the original.
//!
//! The log is either Apache Kafka ([`log::kafka`]) or an embedded, Kafka-like
//! directory of segment files ([`log::file`](mod@crate::log::file)); both implement the small
//! [`log::LogBackend`] abstraction.
//!
//! The README's program (`examples/quickstart.rs`): four workers capture,
//! three replay.
//!
#![doc = concat!("```\n", include_str!("../examples/quickstart.rs"), "```")]
//!
//! The helpers [`capture`], [`replay`] and [`capture_exactly_once`] do
//! what every worker repeats (topic setup, partition assignment, session
//! choice) in one call each; they are collective: every worker calls them,
//! and all get `Ok` or all get the error. [`execute`] runs the computation
//! and returns a capture or replay failure in any worker as its `Err`.
//! [`EventProducer`] and [`EventConsumer`] are the timely adapters beneath
//! them, for a program that assigns partitions itself.
//!
//! # Failures
//!
//! The crate never ends the host process or changes its exit status: a
//! failure is returned by [`execute`], recorded in its [`Status`] (one type
//! for a capture, a replay, a source, a sink, a pipeline) and printed once to stderr as one
//! line naming topic, partition and offset. A failed replay closes its
//! stream's frontier so every worker can finish: downstream operators see
//! "done", and only the handle or `execute`'s `Err` tells a failure from a
//! complete stream. A command-line program that wants an unhandled failure
//! or a panic to exit with status 1 opts in with [`exit_on_unhandled_failure`].
//!
//! # Layers
//!
//! Data flows one way, and each layer knows only the ones below it:
//!
//! ```text
//! dataflow -> capture_into -> EventProducer -> frame -> log -> (disk | Kafka)
//!          -> log -> frame checks -> EventConsumer -> replay_into -> dataflow
//! ```
//!
//! - the stream protocol (frames, codecs, stream headers, sessions, commits)
//!   is internal; [`inspect`] reads it for people.
//! - [`log`]: the partition-log traits (implement them for another backend)
//!   and the two backends.
//! - [`connect`]: plain Kafka records in and out of timely (not captured streams).
//!
//! The binaries (`capture_send`, `capture_recv`, `capture_inspect`,
//! `mock_broker`) are a crate of their own, `cli/` in the repository: the
//! library has no command-line code or dependencies.
#![warn(missing_docs)]
#![warn(unreachable_pub)]

mod capture;
mod codec_id;
pub mod connect;
pub mod error;
pub mod log;
mod runtime;

#[cfg(feature = "differential")]
pub use capture::differential;
pub use capture::inspect;

pub use capture::exactly_once::ExactlyOnce;
pub use capture::producer::{CaptureStats, EventProducer};
pub use capture::replay::consumer::EventConsumer;
pub use capture::replay::stats::ReplayStats;
pub use capture::wire::stream::StreamLayout;
pub use capture::worker::resume::ResumePoint;
pub use capture::worker::{capture, capture_exactly_once, replay, CaptureOptions, ReplayOptions, StreamStart};
pub use error::{Error, Result};
pub use log::file::FileLog;
pub use log::kafka::KafkaLog;
pub use runtime::failure::exit_on_unhandled_failure;
pub use runtime::status::{Stats, Status};
pub use runtime::{execute, step_until_done, try_execute, REPLAY_PERIOD};

/// How a stream's events become bytes: the codec a capture writes with and
/// a replay reads with, and the id each frame carries.
pub mod codec {
    #[cfg(feature = "abomonation")]
    pub use crate::capture::wire::codec::Abomonation;
    pub use crate::capture::wire::codec::{Bincode, EventCodec};
    pub use crate::codec_id::CodecId;
}

/// Runs every decoder of untrusted bytes on `bytes` (frame header, stream
/// header, the bincode codec): the frame fuzzer's entry point, compiled only
/// with `--cfg fuzzing` (fuzz/, built by `.ci/run`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub fn fuzz_decoders(bytes: &[u8]) {
    capture::wire::decode_untrusted(bytes)
}

/// The Rust blocks of README.md and docs/, compiled (and, unless marked
/// `no_run`, run) by `cargo test --doc`, so the documentation cannot drift
/// from the API.
#[cfg(doctest)]
mod documentation {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/guide.md")]
    struct Guide;
    #[doc = include_str!("../docs/exactly-once.md")]
    struct ExactlyOnceGuide;
}
