//! The stream protocol: how a timely event stream becomes log records and back.
//!
//! A captured *stream* is one log partition holding, in order:
//!
//! 1. a stream header record: capture session id, worker, peers, codec and
//!    the Rust types of time and container;
//! 2. one frame per timely `Event` (data batches and progress deltas), each
//!    with the session id, a sequence number and a checksum; events too
//!    large for one record are split into chunk frames;
//! 3. a final event, flagged in its frame header, after which the stream's
//!    frontier is empty.
//!
//! The folders follow the data, and each uses only the ones before it:
//!
//! - `wire`: the on-log format, as bytes only (no I/O, no timely operators),
//!   so the fuzzer, the inspector and both directions share one definition.
//! - `replay`: the consumer that checks every record before timely sees it;
//!   replay must hand timely *exactly* the captured sequence, because
//!   progress events are deltas.
//! - `exactly_once`: commit points and epochs, the rules that let a crashed
//!   capture resume without replaying anything twice.
//! - [`producer`]: the capture side, one partition writer per stream.
//! - [`worker`]: the per-worker helpers most programs call (topic setup,
//!   partition assignment, session choice, failures) — the only part that
//!   knows about a computation's other workers.
//!
//! [`inspect`] reads streams for people (no timely), and [`differential`]
//! adapts differential dataflow collections.
//!
//! This layer uses [`crate::log`] (through its traits only) and nothing above it.

#[cfg(feature = "differential")]
pub mod differential;
pub(crate) mod exactly_once;
pub mod inspect;
pub(crate) mod producer;
pub(crate) mod replay;
pub(crate) mod wire;
pub(crate) mod worker;
