//! What a replay counts: [`ReplayStats`], read through its
//! [`Status`](crate::status::Status) after the consumer moved into a dataflow.
//!
//! The status is the only place that tells a replay that completed from
//! one that failed: both close the replayed stream's frontier, and
//! downstream operators see "done" either way (see `runtime::failure`).

use std::sync::atomic::AtomicU64;

use crate::error::TopicPartition;
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

/// The replay's metrics (see [`crate::metrics`]): handles made once per
/// partition, no-ops unless the program installed a recorder.
pub(crate) struct ReplayMetrics {
    pub(crate) records: metrics::Counter,
    pub(crate) bytes: metrics::Counter,
    pub(crate) lag: metrics::Gauge,
    pub(crate) idle_seconds: metrics::Gauge,
    pub(crate) skipped: metrics::Counter,
    /// The largest end offset seen (where the log tells it cheaply).
    pub(crate) known_end: u64,
    /// One past the largest offset read.
    pub(crate) position: u64,
}

impl ReplayMetrics {
    pub(crate) fn new(id: &TopicPartition) -> Self {
        use crate::runtime::metrics as m;
        let labels = m::partition_labels(&id.topic, id.partition);
        ReplayMetrics {
            records: metrics::counter!(m::REPLAY_RECORDS, &labels),
            bytes: metrics::counter!(m::REPLAY_BYTES, &labels),
            lag: metrics::gauge!(m::REPLAY_LAG, &labels),
            idle_seconds: metrics::gauge!(m::REPLAY_IDLE_SECONDS, &labels),
            skipped: metrics::counter!(m::REPLAY_SKIPPED, &labels),
            known_end: 0,
            position: 0,
        }
    }

    /// A record at `offset` of `bytes` bytes was read.
    pub(crate) fn read(&mut self, offset: u64, bytes: usize) {
        self.bytes.increment(bytes as u64);
        self.position = self.position.max(offset + 1);
    }

    /// Sets the lag from the end offset the log reported (if it did);
    /// `caught_up`: the reader has nothing more to read now.
    pub(crate) fn update_lag(&mut self, end: Option<u64>, caught_up: bool) {
        self.known_end = self.known_end.max(end.unwrap_or(0));
        if caught_up && end.is_none() {
            // A log that reports no end cheaply (the file log) has been
            // read to its end.
            self.known_end = self.position;
        }
        self.lag.set(self.known_end.saturating_sub(self.position) as f64);
    }
}
