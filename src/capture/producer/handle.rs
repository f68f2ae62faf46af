//! `CaptureHandle`: what a program sees of a capture after its producer moved
//! into a dataflow — counters, completion and the first error, shared with
//! the producer through atomics so any thread can read them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::runtime::failure::FailureSlot;

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

#[derive(Default)]
pub(super) struct CaptureShared {
    pub(super) records: AtomicU64,
    pub(super) frames: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) commits: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) complete: AtomicBool,
    pub(super) error: FailureSlot,
}

/// A view of a running capture, shareable across threads: counters for
/// progress bars, completion, and the first error.
///
/// A failed capture stops writing but lets its dataflow run on, so the
/// computation's frontiers still close and every worker ends: the capture
/// operator looks done. [`CaptureHandle::outcome`] says whether it is.
#[derive(Clone, Default)]
#[must_use = "the handle is how a failure is seen"]
pub struct CaptureHandle {
    pub(super) shared: Arc<CaptureShared>,
}

impl std::fmt::Debug for CaptureHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureHandle").field("stats", &self.stats()).field("error", &self.error()).finish()
    }
}

impl CaptureHandle {
    /// Totals so far.
    pub fn stats(&self) -> CaptureStats {
        CaptureStats {
            records: self.shared.records.load(Ordering::Relaxed),
            frames: self.shared.frames.load(Ordering::Relaxed),
            bytes: self.shared.bytes.load(Ordering::Relaxed),
            commits: self.shared.commits.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }

    /// Whether the stream's frontier became empty and everything was flushed
    /// (never after a failure, here or upstream).
    pub fn is_complete(&self) -> bool {
        self.shared.complete.load(Ordering::Acquire)
    }

    /// The first error, if any; it names topic and partition. Reading it has
    /// no side effect (see [the crate's failure rules](crate#failures)).
    pub fn error(&self) -> Option<Error> {
        self.shared.error.error()
    }

    /// `Ok(stats)` if the capture completed, the error if it failed, and an
    /// error saying so if it is still incomplete.
    pub fn outcome(&self) -> Result<CaptureStats> {
        if let Some(error) = self.error() {
            return Err(error);
        }
        if !self.is_complete() {
            return Err(Error::Config("capture incomplete: the stream's frontier never became empty".into()));
        }
        Ok(self.stats())
    }
}
