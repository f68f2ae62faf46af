//! What a capture counts: [`CaptureStats`], read through its
//! [`Status`](crate::status::Status) after the producer moved into a dataflow. The
//! producer updates the counters; any thread reads them.

use std::sync::atomic::AtomicU64;

use crate::error::TopicPartition;
use crate::runtime::status::{load, sealed::Counted, Stats};

/// Totals of one capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Data records captured (sum of container record counts).
    pub records: u64,
    /// Log records (frames) written, stream header included.
    pub frames: u64,
    /// Encoded bytes written.
    pub bytes: u64,
    /// Commit records written (exactly-once captures).
    pub commits: u64,
    /// Messages a resumed capture dropped because they were committed before.
    pub dropped: u64,
}

/// The counters behind [`CaptureStats`].
#[derive(Default)]
#[doc(hidden)]
pub struct CaptureCounters {
    pub(crate) records: AtomicU64,
    pub(crate) frames: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

impl Counted for CaptureStats {
    type Counters = CaptureCounters;
    fn read(c: &CaptureCounters) -> Self {
        CaptureStats {
            records: load(&c.records),
            frames: load(&c.frames),
            bytes: load(&c.bytes),
            commits: load(&c.commits),
            dropped: load(&c.dropped),
        }
    }
}

impl Stats for CaptureStats {}

/// The capture's metrics (see [`crate::metrics`]): handles made once per
/// partition, no-ops unless the program installed a recorder.
pub(crate) struct CaptureMetrics {
    pub(crate) records: metrics::Counter,
    pub(crate) bytes: metrics::Counter,
    pub(crate) frames: metrics::Counter,
    pub(crate) commits: metrics::Counter,
    pub(crate) commit_seconds: metrics::Histogram,
    pub(crate) uncommitted_bytes: metrics::Gauge,
    pub(crate) frontier: metrics::Gauge,
}

impl CaptureMetrics {
    pub(crate) fn new(id: &TopicPartition) -> Self {
        use crate::runtime::metrics as m;
        let labels = m::partition_labels(&id.topic, id.partition);
        CaptureMetrics {
            records: metrics::counter!(m::CAPTURE_RECORDS, &labels),
            bytes: metrics::counter!(m::CAPTURE_BYTES, &labels),
            frames: metrics::counter!(m::CAPTURE_FRAMES, &labels),
            commits: metrics::counter!(m::CAPTURE_COMMITS, &labels),
            commit_seconds: metrics::histogram!(m::CAPTURE_COMMIT_SECONDS, &labels),
            uncommitted_bytes: metrics::gauge!(m::CAPTURE_UNCOMMITTED_BYTES, &labels),
            frontier: metrics::gauge!(m::CAPTURE_FRONTIER, &labels),
        }
    }
}
