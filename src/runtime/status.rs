//! One status type for everything that runs inside a computation.
//!
//! A capture, a replay, a source, a sink and a pipeline all move into a
//! dataflow, and a program keeps a [`Status`] to see them from outside
//! (from any thread): their counters, whether they completed, and the
//! failure that stopped them. They differ only in what they count, so the
//! status is one type with the counters as its parameter: a
//! `Status<CaptureStats>` and a `Status<SinkStats>` answer the same
//! questions the same way.
//!
//! A failure closes frontiers so the computation can end, which downstream
//! operators cannot tell from a stream that ended (see `failure`). A status
//! tells them apart: [`Status::is_complete`] is never true after a
//! failure, and [`Status::error`] returns it, as often as asked and with no
//! side effect.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::failure::FailureSlot;
use crate::error::{Error, Result};

/// What a [`Status`] counts: the stats of one kind of running thing.
///
/// Implemented by the crate's stats types only (`CaptureStats`,
/// `ReplayStats`, `SourceStats`, `SinkStats`, `PipelineStats`).
pub trait Stats: sealed::Counted + Copy + std::fmt::Debug + Send + Sync + 'static {}

pub(crate) mod sealed {
    /// The live counters behind a stats type, and how to read them.
    pub trait Counted {
        /// Shared, atomically updated counters.
        type Counters: Default + Send + Sync + 'static;
        /// A snapshot of `counters`.
        fn read(counters: &Self::Counters) -> Self;
    }
}

struct Shared<C> {
    counters: C,
    complete: AtomicBool,
    failure: FailureSlot,
    warnings: AtomicU64,
    printed: Mutex<HashSet<String>>,
}

/// The view a program keeps of a capture, replay, source, sink or pipeline
/// that runs in a dataflow: clones share it, any thread may read it.
#[must_use = "the status is how a failure is seen"]
pub struct Status<S: Stats> {
    shared: Arc<Shared<S::Counters>>,
}

impl<S: Stats> Clone for Status<S> {
    fn clone(&self) -> Self {
        Status { shared: self.shared.clone() }
    }
}

impl<S: Stats> Default for Status<S> {
    fn default() -> Self {
        let shared = Shared {
            counters: S::Counters::default(),
            complete: AtomicBool::new(false),
            failure: FailureSlot::default(),
            warnings: AtomicU64::new(0),
            printed: Mutex::new(HashSet::new()),
        };
        Status { shared: Arc::new(shared) }
    }
}

impl<S: Stats> std::fmt::Debug for Status<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Status")
            .field("stats", &self.stats())
            .field("complete", &self.is_complete())
            .field("warnings", &self.warnings())
            .field("error", &self.error())
            .finish()
    }
}

impl<S: Stats> Status<S> {
    /// The counters now.
    pub fn stats(&self) -> S {
        S::read(&self.shared.counters)
    }

    /// Whether it reached its end with nothing failed (a capture: its
    /// frontier emptied and everything was stored; a replay: the stream's
    /// end was read; a sink: its input ended and everything was written).
    /// Never true after a failure.
    pub fn is_complete(&self) -> bool {
        self.shared.complete.load(Ordering::Acquire)
    }

    /// Whether it failed.
    pub fn is_failed(&self) -> bool {
        self.shared.failure.is_failed()
    }

    /// The failure, if any: one line naming topic, partition and offset
    /// where there is one. Reading it has no side effect (see
    /// [the crate's failure rules](crate#failures)).
    pub fn error(&self) -> Option<Error> {
        self.shared.failure.error()
    }

    /// Transient errors seen and ridden through (each distinct one was
    /// printed once to stderr).
    pub fn warnings(&self) -> u64 {
        self.shared.warnings.load(Ordering::Relaxed)
    }

    /// `Ok(stats)` if it completed, its error if it failed, and an error
    /// saying so if it has not completed yet.
    pub fn outcome(&self) -> Result<S> {
        if let Some(error) = self.error() {
            return Err(error);
        }
        if !self.is_complete() {
            return Err(Error::Config("not complete: its frontier never became empty".into()));
        }
        Ok(self.stats())
    }

    pub(crate) fn counters(&self) -> &S::Counters {
        &self.shared.counters
    }

    pub(crate) fn failure(&self) -> &FailureSlot {
        &self.shared.failure
    }

    pub(crate) fn set_complete(&self) {
        self.shared.complete.store(true, Ordering::Release);
    }

    /// Counts a transient error and prints it the first time it is seen.
    pub(crate) fn warn(&self, message: String) {
        self.shared.warnings.fetch_add(1, Ordering::Relaxed);
        let mut printed = self.shared.printed.lock().unwrap_or_else(|p| p.into_inner());
        if printed.len() < 64 && printed.insert(message.clone()) {
            eprintln!("timely-kafka: warning: {message}");
        }
    }
}

/// A counter of a stats type.
pub(crate) fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TopicPartition;

    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    struct Counted2(u64);

    #[derive(Default)]
    struct Counter(AtomicU64);

    impl sealed::Counted for Counted2 {
        type Counters = Counter;
        fn read(c: &Counter) -> Self {
            Counted2(load(&c.0))
        }
    }
    impl Stats for Counted2 {}

    #[test]
    fn clones_share_counters_completion_and_the_first_error() {
        let status = Status::<Counted2>::default();
        let seen = status.clone();
        assert!(matches!(seen.outcome(), Err(Error::Config(_))), "not complete yet");
        status.counters().0.fetch_add(3, Ordering::Relaxed);
        status.set_complete();
        assert_eq!(seen.outcome().unwrap(), Counted2(3));

        let failed = Status::<Counted2>::default();
        let at = TopicPartition::new("t", 1);
        failed.failure().record_consequence("x", Error::Write { at: at.clone(), reason: "first".into() });
        failed.failure().record_consequence("x", Error::Write { at, reason: "second".into() });
        let error = failed.clone().error().expect("failed");
        assert!(error.to_string().contains("first"), "{error}");
        assert_eq!(failed.error().map(|e| e.to_string()), Some(error.to_string()), "reading has no side effect");
        assert!(failed.is_failed() && !failed.is_complete());
        assert!(failed.outcome().is_err());
    }

    #[test]
    fn warnings_are_counted_every_time() {
        let status = Status::<Counted2>::default();
        status.warn("broker down".into());
        status.warn("broker down".into());
        assert_eq!(status.warnings(), 2);
    }
}
