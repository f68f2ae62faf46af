//! What a failed capture or replay does to the computation around it.
//!
//! timely's `EventPusher::push` and `EventIterator::next` cannot return an
//! error, and a worker that panics leaves its peers waiting forever for the
//! progress it will never send. So a failing [`crate::EventConsumer`] or
//! [`crate::EventProducer`] does not panic. Instead:
//!
//! 1. It records the error in a [`FailureSlot`] (its handle's), which also
//!    registers it process-wide and with the computation the current worker
//!    thread belongs to, if it runs under [`crate::capture::worker::execute`].
//! 2. A consumer *closes its frontier*: it hands timely one progress event
//!    retracting every count it still holds, so the replay operator holds no
//!    capability for its stream and every worker's probe can complete. The
//!    other consumers of the same computation close theirs too
//!    ([`peer_failed`]). A producer stops writing and lets the capture
//!    dataflow run to its end.
//! 3. Somebody must *handle* the failure: reading it through the handle
//!    (`error()`, `outcome()`) or receiving it as the `Err` of
//!    [`crate::capture::worker::execute`] does. A failure nobody handled ends
//!    the process with its message and exit status 1, in bounded time and
//!    never with status 0:
//!    - a watchdog thread exits once a failure stays unhandled for the grace
//!      period ([`set_grace_period`], 30 s by default), whatever the workers
//!      are doing, so the process cannot hang;
//!    - an `atexit` handler turns a normal exit (`main` returning, or
//!      `std::process::exit(0)`) into status 1 while a failure is unhandled,
//!      so a program that ignores the failure cannot succeed.
//!
//! Panicking instead was considered and rejected: the failing worker would
//! stop stepping while its downstream operators still hold capabilities (a
//! `reduce`, an arrangement), and its peers would wait for them forever.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use crate::error::Error;

/// One recorded failure.
struct Failure {
    message: String,
    /// The error itself, for the one caller that receives it as a `Result`.
    error: Mutex<Option<Error>>,
    handled: AtomicBool,
    recorded_at: Instant,
}

impl Failure {
    fn handle(&self) {
        self.handled.store(true, Ordering::Release);
    }

    fn is_handled(&self) -> bool {
        self.handled.load(Ordering::Acquire)
    }
}

/// The first error of one capture or replay, shared with its handle.
#[derive(Default)]
pub struct FailureSlot {
    first: Mutex<Option<Arc<Failure>>>,
}

impl FailureSlot {
    /// Records `error` (prefixed by `context`, e.g. "replay failed") unless
    /// an earlier error was recorded; see the module docs for what follows.
    pub fn record(&self, context: &str, error: Error) {
        let mut first = lock(&self.first);
        if first.is_none() {
            let failure = new_failure(context, error);
            CURRENT.with(|current| {
                if let Some(computation) = current.borrow().as_ref() {
                    computation.add(failure.clone());
                }
            });
            *first = Some(failure);
        }
    }

    /// The recorded error's message, if any. Reading it *handles* the
    /// failure: the caller takes over reporting it.
    pub fn take_message(&self) -> Option<String> {
        lock(&self.first).as_ref().map(|failure| {
            failure.handle();
            failure.message.clone()
        })
    }

    /// Whether an error was recorded (without handling it).
    pub fn is_failed(&self) -> bool {
        lock(&self.first).is_some()
    }
}

/// A failure, registered with the process-wide fallback until handled.
fn new_failure(context: &str, error: Error) -> Arc<Failure> {
    let failure = Arc::new(Failure {
        message: format!("{context}: {error}"),
        error: Mutex::new(Some(error)),
        handled: AtomicBool::new(false),
        recorded_at: Instant::now(),
    });
    register_unhandled(failure.clone());
    failure
}

fn lock<V>(mutex: &Mutex<V>) -> MutexGuard<'_, V> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The failures of one computation run by [`crate::capture::worker::execute`].
#[derive(Default)]
pub(crate) struct Computation {
    failures: Mutex<Vec<Arc<Failure>>>,
    failed: AtomicBool,
}

impl Computation {
    fn add(&self, failure: Arc<Failure>) {
        lock(&self.failures).push(failure);
        self.failed.store(true, Ordering::Release);
    }

    /// Records an error a worker returned as a failure of the computation.
    pub(crate) fn record_returned(&self, error: Error) {
        self.add(new_failure("worker failed", error));
    }

    /// The first failure's message, without handling it.
    pub(crate) fn first_message(&self) -> Option<String> {
        lock(&self.failures).first().map(|f| f.message.clone())
    }

    /// Handles every failure of the computation and returns the first error.
    pub(crate) fn take_first(&self) -> Option<Error> {
        let failures = lock(&self.failures);
        failures.iter().for_each(|f| f.handle());
        let first = failures.first()?;
        let error = lock(&first.error).take();
        Some(error.unwrap_or_else(|| Error::Dataflow(first.message.clone())))
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
/// (false outside [`crate::capture::worker::execute`]). A consumer that sees
/// this closes its frontier, so the whole computation winds down.
pub fn peer_failed() -> bool {
    CURRENT.with(|current| current.borrow().as_ref().is_some_and(|c| c.failed.load(Ordering::Acquire)))
}

static UNHANDLED: Mutex<Vec<Arc<Failure>>> = Mutex::new(Vec::new());
static GRACE_MS: AtomicU64 = AtomicU64::new(30_000);
static FALLBACK: Once = Once::new();

/// How long a failure may stay unhandled before the process exits with
/// status 1 (default 30 s). `None` disables the watchdog; a normal exit with
/// an unhandled failure still ends with status 1.
pub fn set_grace_period(grace: Option<Duration>) {
    let ms = grace.map_or(u64::MAX, |g| g.as_millis().min(u64::MAX as u128 - 1) as u64);
    GRACE_MS.store(ms, Ordering::Relaxed);
}

fn register_unhandled(failure: Arc<Failure>) {
    lock(&UNHANDLED).push(failure);
    FALLBACK.call_once(|| {
        // SAFETY: registers a plain function; `atexit` has no other requirement.
        unsafe { libc::atexit(exit_if_unhandled) };
        let _ = std::thread::Builder::new().name("timely-kafka-watchdog".into()).spawn(watchdog);
    });
}

/// The oldest failure nobody handled, dropping the handled ones.
fn oldest_unhandled(failures: &mut Vec<Arc<Failure>>) -> Option<Arc<Failure>> {
    failures.retain(|f| !f.is_handled());
    failures.first().cloned()
}

fn watchdog() {
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let grace = Duration::from_millis(GRACE_MS.load(Ordering::Relaxed));
        let oldest = oldest_unhandled(&mut lock(&UNHANDLED));
        if let Some(failure) = oldest.filter(|f| f.recorded_at.elapsed() >= grace) {
            eprintln!(
                "timely-kafka: error: {} (unhandled for {}s; exiting)",
                failure.message,
                grace.as_secs_f64().round()
            );
            std::process::exit(1);
        }
    }
}

extern "C" fn exit_if_unhandled() {
    use std::io::Write;
    // Another thread may hold the lock for a moment (the watchdog); never block here.
    for _ in 0..100 {
        let mut failures = match UNHANDLED.try_lock() {
            Ok(failures) => failures,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        if let Some(failure) = oldest_unhandled(&mut failures) {
            let _ = writeln!(
                std::io::stderr(),
                "timely-kafka: error: {} (the program ended without handling it)",
                failure.message
            );
            // SAFETY: ends the process at once, skipping the remaining exit handlers.
            unsafe { libc::_exit(1) };
        }
        return;
    }
}
