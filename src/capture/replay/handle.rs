//! What a running replay shows the outside: its totals, whether it
//! completed, and the error that stopped it.
//!
//! An [`crate::EventConsumer`] moves into the dataflow that replays it, so
//! the program keeps a [`ReplayHandle`] instead: the consumer counts into
//! shared atomics, and the handle reads them from any thread.
//!
//! The handle is the only place that tells a replay that completed from one
//! that failed: both close the replayed stream's frontier, and downstream
//! operators see "done" either way (see [`crate::runtime::failure`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::Error;
use crate::runtime::failure::FailureSlot;

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

/// The counters a consumer updates and its handles read.
#[derive(Default)]
pub(super) struct ReplayShared {
    pub(super) records: AtomicU64,
    pub(super) frames: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) duplicates: AtomicU64,
    pub(super) complete: AtomicBool,
    pub(super) error: FailureSlot,
}

/// A view of a running replay, shareable across threads.
///
/// A failed replay closes its stream's frontier so the computation can end:
/// downstream operators (a probe, a `reduce`, a capture) then see the stream
/// as done although it stopped early. Check [`ReplayHandle::error`] (or use
/// [`crate::runtime::execute`], which returns the failure) before
/// trusting what they computed.
#[derive(Clone, Default)]
#[must_use = "the handle is how a failure is seen"]
pub struct ReplayHandle {
    pub(super) shared: Arc<ReplayShared>,
}

impl std::fmt::Debug for ReplayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayHandle")
            .field("stats", &self.stats())
            .field("complete", &self.is_complete())
            .field("error", &self.error())
            .finish()
    }
}

impl ReplayHandle {
    /// Totals so far.
    pub fn stats(&self) -> ReplayStats {
        ReplayStats {
            records: self.shared.records.load(Ordering::Relaxed),
            frames: self.shared.frames.load(Ordering::Relaxed),
            bytes: self.shared.bytes.load(Ordering::Relaxed),
            duplicates: self.shared.duplicates.load(Ordering::Relaxed),
        }
    }

    /// Whether the replayed stream's frontier became empty because the
    /// stream ended (never after a failure).
    pub fn is_complete(&self) -> bool {
        self.shared.complete.load(Ordering::Acquire)
    }

    /// The error that stopped the replay, if any; it names topic, partition
    /// and offset. Reading it has no side effect (see
    /// [the crate's failure rules](crate#failures)).
    pub fn error(&self) -> Option<Error> {
        self.shared.error.error()
    }

    /// Whether the replay failed.
    pub fn is_failed(&self) -> bool {
        self.shared.error.is_failed()
    }
}
