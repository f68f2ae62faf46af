//! Capture timely dataflow streams into a partitioned log and replay them.
//!
//! A timely computation captures a stream with timely's `capture_into` and
//! an [`EventProducer`]; another computation, with any number of workers,
//! replays it with [`ReplayLog::replay_log`] over [`EventConsumer`]s. Data and progress
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
//! The helpers [`capture`], [`replay`] and [`exactly_once::capture`] do
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
//! failure is returned by [`execute`], recorded in its [`Status`](status::Status) (one type
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
//!          -> log -> frame checks -> EventConsumer -> replay_log -> dataflow
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

pub use capture::producer::EventProducer;
pub use capture::replay::consumer::EventConsumer;
pub use capture::replay::replay_log::ReplayLog;
pub use capture::wire::stream::StreamLayout;
pub use capture::worker::{capture, replay, CaptureOptions, ReplayOptions};
pub use error::{Error, Result};
pub use log::file::FileLog;
pub use log::kafka::KafkaLog;
pub use runtime::failure::exit_on_unhandled_failure;
pub use runtime::{execute, step_until_done, try_execute};

/// Exactly-once *capture*: commit records written into the captured stream
/// itself, so a replay delivers only committed events and a killed capture
/// resumes where its commits end. It rests on the stream protocol alone and
/// holds on the file log and every Kafka broker (`docs/exactly-once.md` in
/// the repository has the protocol, the resume contract and the limits).
///
/// Not to be confused with the *transactional pipelines* of
/// [`connect::transactional`], which write plain Kafka records for other
/// programs in Kafka transactions.
pub mod exactly_once {
    pub use crate::capture::exactly_once::CommitOptions;
    pub use crate::capture::worker::capture_exactly_once as capture;
    pub use crate::capture::worker::resume::ResumePoint;
    pub use crate::capture::worker::StreamStart;
}

/// What is running and how it is doing: one [`Status`](status::Status)
/// type for a capture, a replay, a Kafka source or sink, and a pipeline,
/// shared by the program and the operator (typed `error()`, `is_failed()`,
/// `is_complete()`, counters in [`Stats`](status::Stats)).
pub mod status {
    pub use crate::capture::producer::CaptureStats;
    pub use crate::capture::replay::stats::ReplayStats;
    pub use crate::runtime::status::{Stats, Status};
}

/// What the crate reports to a metrics recorder (the `metrics` facade):
/// every metric's name, type, labels and meaning. The library installs no
/// recorder; a program that installs one (e.g. `metrics-exporter-prometheus`)
/// gets them, and one that does not pays nothing (`docs/operations.md` in
/// the repository has the table and the alerts worth setting).
pub mod metrics {
    pub use crate::runtime::metrics::*;
}

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
