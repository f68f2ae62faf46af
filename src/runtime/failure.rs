//! What a failed capture or replay does to the computation around it, and
//! what it never does: end or change the exit status of the host process.
//!
//! timely's `EventPusher::push` and `EventIterator::next` cannot return an
//! error, and a worker that panics leaves its peers waiting forever for the
//! progress it will never send. So a failing [`crate::EventConsumer`] or
//! [`crate::EventProducer`] does not panic. Instead:
//!
//! 1. It records the error in a [`FailureSlot`] (its handle's): the handle's
//!    `error()` returns it, as often as asked, with no side effect. If the
//!    worker runs under [`crate::runtime::execute`], the failure is
//!    also the computation's, and `execute` returns it as its `Err`.
//! 2. It prints one line to stderr, `timely-kafka: error: replay failed:
//!    topic 'T' partition P offset O: reason`, once per failure, so a program
//!    that never looks at a handle cannot fail silently (unless the program
//!    took over reporting with [`exit_on_unhandled_failure`]).
//! 3. A consumer *closes its frontier*: it hands timely one progress event
//!    retracting every count it still holds, so the replay operator holds no
//!    capability for its stream and every worker's probe can complete. The
//!    other consumers of the same computation close theirs too
//!    ([`peer_failed`]). A producer stops writing and lets the capture
//!    dataflow run to its end.
//!
//! A closed frontier means "done" to every operator downstream: a probe
//! completes, a `reduce` emits its final output. After a failure that output
//! is incomplete; only the handle (or `execute`'s `Err`) tells the two apart.
//! The crate's own writers check: an [`crate::EventProducer`] under
//! `execute` stops writing once a failure closed a frontier of its
//! computation, so a stream replayed from a failed replay never gets a
//! final record or a final commit (see [`frontier_closed_by_failure`] for
//! the limits of that check).
//!
//! The process itself is the program's business. A program that wants a
//! failure nobody handled to end it with status 1 (as the crate's binaries
//! do) opts in with [`exit_on_unhandled_failure`].
//!
//! Panicking instead was considered and rejected: the failing worker would
//! stop stepping while its downstream operators still hold capabilities (a
//! `reduce`, an arrangement), and its peers would wait for them forever.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::error::Error;

/// One recorded failure.
struct Failure {
    /// What failed, e.g. "replay failed".
    context: String,
    error: Error,
    /// Returned to the program by [`crate::runtime::execute`]
    /// (what [`exit_on_unhandled_failure`] checks at exit).
    handled: AtomicBool,
}

impl Failure {
    fn new(context: &str, error: Error) -> Arc<Failure> {
        Arc::new(Failure { context: context.to_string(), error, handled: AtomicBool::new(false) })
    }

    /// `context: error`, on one line.
    fn message(&self) -> String {
        one_line(&format!("{}: {}", self.context, self.error))
    }

    fn handle(&self) {
        self.handled.store(true, Ordering::Release);
    }

    fn is_handled(&self) -> bool {
        self.handled.load(Ordering::Acquire)
    }
}

/// The first error of one capture or replay, shared with its handle.
#[derive(Default)]
pub(crate) struct FailureSlot {
    first: Mutex<Option<Arc<Failure>>>,
}

impl FailureSlot {
    /// Records `error` (prefixed by `context`, e.g. "replay failed" in the
    /// printed line) unless an earlier error was recorded; see the module
    /// docs for what follows.
    pub(crate) fn record(&self, context: &str, error: Error) {
        let Some(failure) = self.set_first(context, error) else { return };
        with_current(|computation| computation.add(failure.clone()));
        report(&failure);
    }

    /// Records an error that is only the consequence of a failure recorded
    /// elsewhere in the computation (e.g. a capture stopped because its input
    /// replay failed): the handle shows it, but it is neither printed nor
    /// returned by `execute` in place of the failure that caused it.
    pub(crate) fn record_consequence(&self, context: &str, error: Error) {
        self.set_first(context, error);
    }

    fn set_first(&self, context: &str, error: Error) -> Option<Arc<Failure>> {
        let mut first = lock(&self.first);
        if first.is_some() {
            return None;
        }
        let failure = Failure::new(context, error);
        *first = Some(failure.clone());
        Some(failure)
    }

    /// The recorded error, if any. Reading it has no side effect.
    pub(crate) fn error(&self) -> Option<Error> {
        lock(&self.first).as_ref().map(|failure| failure.error.clone())
    }

    /// The recorded error's message with its context (`replay failed:
    /// topic 'T' partition P offset O: ...`), if any.
    #[cfg(test)]
    fn message(&self) -> Option<String> {
        lock(&self.first).as_ref().map(|failure| failure.message())
    }

    /// Whether an error was recorded.
    pub(crate) fn is_failed(&self) -> bool {
        lock(&self.first).is_some()
    }
}

fn lock<V>(mutex: &Mutex<V>) -> MutexGuard<'_, V> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps a message to one line: it may end up as the last line a user sees.
fn one_line(message: &str) -> String {
    if message.contains(['\n', '\r']) {
        message.split(['\n', '\r']).filter(|part| !part.trim().is_empty()).collect::<Vec<_>>().join(" ")
    } else {
        message.to_string()
    }
}

/// The failures of one computation run by [`crate::runtime::execute`].
#[derive(Default)]
pub(crate) struct Computation {
    failures: Mutex<Vec<Arc<Failure>>>,
    failed: AtomicBool,
    /// A frontier was closed because of a failure: a downstream "done" may
    /// be false from now on.
    closed_by_failure: AtomicBool,
}

impl Computation {
    fn add(&self, failure: Arc<Failure>) {
        register_with_process(&failure);
        lock(&self.failures).push(failure);
        self.failed.store(true, Ordering::Release);
    }

    /// Records an error a worker returned as a failure of the computation
    /// (not printed: `execute` returns it to the program that returned it).
    /// Returns whether it is the computation's first failure.
    pub(crate) fn record_returned(&self, error: Error) -> bool {
        let failure = Failure::new("worker failed", error);
        register_with_process(&failure);
        let mut failures = lock(&self.failures);
        failures.push(failure);
        self.failed.store(true, Ordering::Release);
        failures.len() == 1
    }

    /// The first failure's message.
    pub(crate) fn first_message(&self) -> Option<String> {
        lock(&self.failures).first().map(|f| f.message())
    }

    /// The first error; every failure of the computation counts as handled
    /// from now on (`execute` hands it to the program).
    pub(crate) fn take_first(&self) -> Option<Error> {
        let failures = lock(&self.failures);
        failures.iter().for_each(|f| f.handle());
        failures.first().map(|first| first.error.clone())
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Computation>>> = const { RefCell::new(None) };
}

/// Makes the calling worker thread part of `computation`: failures recorded
/// on it are the computation's, and its consumers stop when one is.
pub(crate) fn enter(computation: Arc<Computation>) {
    CURRENT.with(|current| *current.borrow_mut() = Some(computation));
}

/// Whether the computation the calling worker thread belongs to has failed
/// (false outside [`crate::runtime::execute`]). A consumer that sees
/// this closes its frontier, so the whole computation winds down.
pub(crate) fn peer_failed() -> bool {
    with_current(|c| c.failed.load(Ordering::Acquire)).unwrap_or(false)
}

/// Announces that the caller closes a frontier because of a failure (a
/// consumer retracting its counts, a source dropping its capability): call
/// it *before* the closing progress leaves, so every operator that sees
/// that progress can know (see [`frontier_closed_by_failure`]). A no-op
/// outside [`crate::runtime::execute`].
pub(crate) fn closing_frontier_after_failure() {
    with_current(|c| c.closed_by_failure.store(true, Ordering::Release));
}

/// Whether a frontier of the calling worker's computation was closed
/// because of a failure, so that an empty frontier downstream may not be
/// the end of the input. Whatever writes results when its input frontier
/// empties checks this first: an [`crate::EventProducer`] stops writing, so
/// a stream cut short is never stored with a final record or final commit;
/// a sink must not commit such an end either.
///
/// The check covers the workers of this process under
/// [`crate::runtime::execute`]. A failure in another process of a
/// cluster reaches this one only when `execute` ends, and without `execute`
/// (plain `timely::execute`) a worker cannot know about failures on other
/// workers at all: a capture fed by a replay belongs under `execute`.
pub(crate) fn frontier_closed_by_failure() -> bool {
    with_current(|c| c.closed_by_failure.load(Ordering::Acquire)).unwrap_or(false)
}

/// `f` of the calling worker's computation, if it runs under `execute`.
fn with_current<R>(f: impl FnOnce(&Computation) -> R) -> Option<R> {
    CURRENT.with(|current| current.borrow().as_deref().map(f))
}

/// Prints the failure's one line, unless the program took over reporting
/// ([`exit_on_unhandled_failure`]).
fn report(failure: &Arc<Failure>) {
    match PROCESS.get() {
        None => eprintln!("timely-kafka: error: {}", failure.message()),
        Some(_) => register_with_process(failure),
    }
}

/// The program's opt-in to process-level failure handling.
struct ProcessFailures {
    program: &'static str,
    /// Failures recorded since the opt-in; the handled ones are dropped as
    /// new ones arrive.
    unhandled: Mutex<Vec<Arc<Failure>>>,
}

static PROCESS: OnceLock<ProcessFailures> = OnceLock::new();

fn register_with_process(failure: &Arc<Failure>) {
    if let Some(process) = PROCESS.get() {
        let mut unhandled = lock(&process.unhandled);
        unhandled.retain(|f| !f.is_handled());
        if !unhandled.iter().any(|f| Arc::ptr_eq(f, failure)) {
            unhandled.push(failure.clone());
        }
    }
}

/// Opts the whole process into the behaviour of a command-line program;
/// the crate's binaries call it first thing in `main`. A library never
/// calls it, and nothing in the crate ends the process without it.
///
/// From this call on:
/// - a capture or replay failure is not printed when it is recorded: the
///   program reports it, having received it as the `Err` of
///   [`crate::runtime::execute`];
/// - a failure that was never returned by `execute` (a plain
///   `timely::execute` program) makes the process end with
///   `PROGRAM: error: MESSAGE` and exit status 1 when it would otherwise
///   exit (`main` returning, or `std::process::exit`), whatever status it
///   asked for;
/// - a panic in any thread prints `PROGRAM: error: MESSAGE` and ends the
///   process with status 1 at once: a panicking timely worker would
///   otherwise leave its peers waiting forever.
///
/// Only the first call has an effect.
pub fn exit_on_unhandled_failure(program: &'static str) {
    let mut first_call = false;
    PROCESS.get_or_init(|| {
        first_call = true;
        ProcessFailures { program, unhandled: Mutex::new(Vec::new()) }
    });
    if !first_call {
        return;
    }
    // SAFETY: registers a plain `extern "C"` function; `atexit` has no
    // other requirement.
    unsafe { libc::atexit(exit_if_unhandled) };
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("worker panicked");
        eprintln!("{program}: error: {}", one_line(message));
        std::process::exit(1);
    }));
}

extern "C" fn exit_if_unhandled() {
    use std::io::Write;
    let Some(process) = PROCESS.get() else { return };
    // Another thread may hold the lock for a moment; never block the exit.
    for _ in 0..100 {
        let unhandled = match process.unhandled.try_lock() {
            Ok(unhandled) => unhandled,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
        };
        if let Some(failure) = unhandled.iter().find(|f| !f.is_handled()) {
            let _ = writeln!(std::io::stderr(), "{}: error: {}", process.program, failure.message());
            // SAFETY: ends the process at once, skipping the remaining exit
            // handlers: the exit status must be 1, not what `exit` was given.
            unsafe { libc::_exit(1) };
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TopicPartition;

    fn corrupt() -> Error {
        Error::Corrupt { at: TopicPartition::new("t", 2), offset: 7, reason: "bad\nbytes".into() }
    }

    #[test]
    fn reading_a_failure_has_no_side_effect() {
        let slot = FailureSlot::default();
        assert!(slot.error().is_none() && !slot.is_failed());
        slot.record_consequence("replay failed", corrupt());
        slot.record_consequence("replay failed", Error::Config("later".into()));
        let (first, second) = (slot.error().unwrap(), slot.error().unwrap());
        assert!(matches!(first, Error::Corrupt { offset: 7, .. }), "{first}");
        assert_eq!(first.to_string(), second.to_string());
        assert_eq!(slot.message().unwrap(), "replay failed: topic 't' partition 2 offset 7: corrupt record: bad bytes");
    }

    #[test]
    fn a_computation_returns_its_first_failure_every_time() {
        let computation = Computation::default();
        computation.record_returned(corrupt());
        computation.record_returned(Error::Config("second".into()));
        assert!(matches!(computation.take_first(), Some(Error::Corrupt { offset: 7, .. })));
        assert!(matches!(computation.take_first(), Some(Error::Corrupt { offset: 7, .. })));
        assert!(computation.first_message().unwrap().starts_with("worker failed: topic 't' partition 2 offset 7"));
    }
}
