//! Replay: turning one partition's records back into the captured events.
//!
//! Replay must hand timely *exactly* the captured sequence: progress events
//! are deltas, so a skipped, repeated or foreign record computes a wrong
//! frontier silently. Any prefix of the sequence is a valid stream, though,
//! which is what lets a replay follow a live capture. Hence the split:
//!
//! - `session` chooses which capture session of a partition to follow (a
//!   restarted capture appends a new one after the torn remains of the old);
//! - `protocol` checks each record: header first, one session only,
//!   sequence numbers without gaps (exact duplicates are skipped);
//! - `consumer` is timely's `EventIterator` over those checks (exactly-once
//!   streams go through [`crate::capture::exactly_once`] instead);
//! - `stats` is what a replay counts, read through its
//!   [`Status`](crate::status::Status) once the consumer has moved into the dataflow.

pub(crate) mod consumer;
mod protocol;
pub(crate) mod replay_log;
pub(crate) mod session;
pub(crate) mod stats;
