//! The stream protocol: how a timely event stream becomes log records and back.
//!
//! A captured *stream* is one log partition holding, in order:
//!
//! 1. a [`stream::StreamHeader`] record: capture session id, worker, peers,
//!    codec and the Rust types of time and container;
//! 2. one [`frame`] per timely `Event` (data batches and progress deltas),
//!    each with the session id, a sequence number and a checksum; events too
//!    large for one record are split into chunk frames;
//! 3. a final event, flagged in its frame header, after which the stream's
//!    frontier is empty.
//!
//! Replay must hand timely *exactly* the captured sequence: progress events
//! are deltas, so a skipped, repeated or foreign record computes a wrong
//! frontier silently. Any prefix of the sequence is a valid stream, though,
//! which is what lets a replay follow a live capture. Hence the checks in
//! [`consumer`]: header first, one session only ([`session`] chooses which
//! when a partition holds several), sequence numbers without gaps (exact
//! duplicates are skipped).
//!
//! On top of the protocol: [`worker`] has the per-worker helpers most
//! programs want (topic setup, partition assignment, session choice) and
//! [`failure`] says what a failed capture or replay does to its computation.
//!
//! This layer uses [`crate::log`] (through its traits only) and nothing above it.

pub mod chain;
pub mod chunks;
pub mod codec;
pub mod collective;
pub mod commit;
pub mod committed;
pub mod consumer;
#[cfg(feature = "differential")]
pub mod differential;
pub mod exactly_once;
pub mod failure;
pub mod frame;
pub mod inspect;
mod plain;
pub mod producer;
mod protocol;
pub mod replay_handle;
pub mod resumable;
pub mod resume;
pub mod session;
pub mod stream;
mod topics;
pub mod worker;
