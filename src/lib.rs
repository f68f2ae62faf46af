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
//! ```
//! use timely::dataflow::operators::{capture::Replay, Capture, Inspect, Probe, ToStream};
//! use timely_kafka::{log::{file::FileLog, LogBackend}, CodecId, EventConsumer, EventProducer};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let log = FileLog::new(dir.path());
//! log.create_topic("numbers", 2, CodecId::Bincode, false).unwrap();
//!
//! // Capture with two workers: worker i writes partition i.
//! let capture_log = log.clone();
//! timely::execute(timely::Config::process(2), move |worker| {
//!     let (index, peers) = (worker.index() as u32, worker.peers() as u32);
//!     let producer = EventProducer::new(capture_log.writer("numbers", index).unwrap(), index, peers).unwrap();
//!     worker.dataflow::<u64, _, _>(|scope| {
//!         (0..10u64).to_stream(scope).container::<Vec<_>>().capture_into(producer)
//!     });
//! }).unwrap();
//!
//! // Replay both partitions with one worker.
//! let sums = timely::execute(timely::Config::thread(), move |worker| {
//!     let streams: Vec<EventConsumer<u64, Vec<u64>>> =
//!         (0..2).map(|p| EventConsumer::new(log.reader("numbers", p, 0).unwrap())).collect();
//!     let sum = std::rc::Rc::new(std::cell::Cell::new(0));
//!     let total = sum.clone();
//!     let probe = worker.dataflow::<u64, _, _>(|scope| {
//!         streams.replay_into(scope).inspect(move |x| total.set(total.get() + *x)).probe().0
//!     });
//!     worker.step_while(|| !probe.done());
//!     sum.get()
//! }).unwrap().join();
//! assert_eq!(sums[0].as_ref().unwrap(), &90);
//! ```
//!
//! Most programs want the per-worker helpers of [`capture::worker`] instead:
//! topic setup, partition assignment and session choice in one call each,
//! and [`capture::worker::execute`], which returns a capture or replay
//! failure in any worker as an `Err` ([`capture::worker::failure`] says how a
//! failure ends the computation, with or without the helpers).
//!
//! The crate never ends the host process or changes its exit status: a
//! failure is returned, recorded in its handle and printed once to stderr.
//! A command-line program that wants an unhandled failure or a panic to
//! exit with status 1 opts in with [`exit_on_unhandled_failure`].
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
//! - [`capture`]: the stream protocol (frames, codecs, stream headers,
//!   sessions) and the timely adapters [`EventProducer`] and [`EventConsumer`].
//! - [`log`]: the partition-log traits and their two backends.
//! - [`connect`]: plain Kafka records in and out of timely (not captured streams).
//!
//! The binaries' shared code (`capture_send`, `capture_recv`, ...) is not
//! part of the library: it sits behind the default cargo feature `cli`, and
//! `default-features = false` leaves out it and its dependencies (clap,
//! indicatif).
#![warn(missing_docs)]

pub mod capture;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
pub mod codec_id;
pub mod connect;
pub mod error;
pub mod log;

pub use capture::exactly_once::resume::ResumePoint;
pub use capture::exactly_once::ExactlyOnce;
pub use capture::producer::{CaptureHandle, CaptureStats, EventProducer};
pub use capture::replay::consumer::EventConsumer;
pub use capture::replay::handle::{ReplayHandle, ReplayStats};
#[cfg(feature = "abomonation")]
pub use capture::wire::codec::Abomonation;
pub use capture::wire::codec::{Bincode, EventCodec};
pub use capture::wire::stream::{StreamHeader, StreamLayout};
pub use capture::worker::failure::exit_on_unhandled_failure;
pub use capture::worker::{CaptureOptions, ReplayOptions};
pub use codec_id::CodecId;
pub use error::{Error, FrameError, PartitionId, Result};
