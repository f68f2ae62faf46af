//! What a replay counts: [`ReplayStats`], read through its
//! [`Status`](crate::status::Status) after the consumer moved into a dataflow.
//!
//! The status is the only place that tells a replay that completed from
//! one that failed: both close the replayed stream's frontier, and
//! downstream operators see "done" either way (see `runtime::failure`).

use std::sync::atomic::AtomicU64;

use crate::runtime::status::{load, sealed::Counted, Stats};

/// Totals of one replay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Data records replayed.
    pub records: u64,
    /// Log records read (including headers and skipped duplicates).
    pub frames: u64,
    /// Bytes of log records read.
    pub bytes: u64,
    /// Duplicate records skipped.
    pub duplicates: u64,
}

/// The counters behind [`ReplayStats`].
#[derive(Default)]
#[doc(hidden)]
pub struct ReplayCounters {
    pub(crate) records: AtomicU64,
    pub(crate) frames: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) duplicates: AtomicU64,
}

impl Counted for ReplayStats {
    type Counters = ReplayCounters;
    fn read(c: &ReplayCounters) -> Self {
        ReplayStats {
            records: load(&c.records),
            frames: load(&c.frames),
            bytes: load(&c.bytes),
            duplicates: load(&c.duplicates),
        }
    }
}

impl Stats for ReplayStats {}
