//! The runtime every part of the crate that runs inside a timely
//! computation stands on: running it ([`execute`]), what a failure does to
//! it (`failure`), agreeing across workers and processes (`collective`),
//! and stepping a worker without spinning ([`step_until_done`]).
//!
//! It sits below capture, replay and the connectors and imports none of
//! them: each of those records its failures here and asks here whether a
//! peer failed, so a failure anywhere ends the whole computation the same
//! way (see `failure`'s module documentation for the rules).

pub(crate) mod collective;
pub(crate) mod failure;
pub(crate) mod metrics;
pub(crate) mod status;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use timely::dataflow::ProbeHandle;
use timely::progress::Timestamp;
use timely::worker::Worker;

use crate::error::{Error, Result};
use collective::all_gather;
use failure::Computation;

/// How often a replay with nothing to read looks again, and how long
/// [`step_until_done`] parks a worker with nothing to do: short enough that
/// a live stream's new records reach timely promptly, long enough that an
/// idle worker sleeps instead of spinning on the cores the log clients use.
pub(crate) const REPLAY_PERIOD: Duration = Duration::from_millis(1);

/// Steps `worker` until `probe` is done, parking between steps when nothing
/// is ready (at most a millisecond) rather than spinning.
///
/// Pair it with [`ReplayLog::replay_log`](crate::ReplayLog::replay_log):
/// timely's `replay_into` reschedules itself on every step, so a worker
/// replaying it never parks.
pub fn step_until_done<T: Timestamp>(worker: &mut Worker, probe: &ProbeHandle<T>) {
    while !probe.done() {
        worker.step_or_park(Some(REPLAY_PERIOD));
    }
}

/// Runs `func` on every worker of `config` (as `timely::execute`) and
/// returns each worker's result, or the computation's first error: a
/// capture or replay failure in any worker (which also stopped the replays
/// and captures of every worker of this process; see
/// [the crate's failure rules](crate#failures)), a failure reported by another process, or
/// an error a worker returned.
///
/// A failure closes the frontiers of the replayed streams, so the workers'
/// probes complete and `func` returns as if the input had ended: its `Ok`
/// values describe a computation that stopped early, which is why they are
/// dropped when there is an error.
pub fn execute<R, F>(config: timely::Config, func: F) -> Result<Vec<R>>
where
    R: Send + 'static,
    F: Fn(&mut Worker) -> Result<R> + Send + Sync + 'static,
{
    try_execute(config, func)
}

/// [`execute`] for a `func` that returns the program's own error type:
/// an error a worker returns comes back as it was returned (the first one,
/// if it was the computation's first failure), a capture or replay failure
/// through `E::from`. The error a worker returns also ends the computation
/// for every other worker, as a capture failure does.
pub fn try_execute<R, E, F>(config: timely::Config, func: F) -> std::result::Result<Vec<R>, E>
where
    R: Send + 'static,
    E: From<Error> + std::fmt::Display + Send + 'static,
    F: Fn(&mut Worker) -> std::result::Result<R, E> + Send + Sync + 'static,
{
    let computation = Arc::new(Computation::default());
    let shared = computation.clone();
    // The error a worker returned first, when it was the computation's
    // first failure: the program gets its own value back, not a rendering.
    let returned: Arc<Mutex<Option<E>>> = Arc::new(Mutex::new(None));
    let first_returned = returned.clone();
    let guards = timely::execute(config, move |worker| {
        failure::enter(shared.clone());
        let result = match func(worker) {
            Ok(value) => Some(value),
            Err(error) => {
                if shared.record_returned(Error::Dataflow(error.to_string())) {
                    *first_returned.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
                }
                None
            }
        };
        // Other processes learn of this one's failure, and it of theirs.
        let failures = all_gather(worker, shared.first_message());
        (result, failures.into_iter().flatten().next())
    })
    .map_err(|e| E::from(Error::Config(e)))?;
    let outcomes = guards.join();
    if let Some(error) = computation.take_first() {
        let own = returned.lock().unwrap_or_else(|p| p.into_inner()).take();
        return Err(own.unwrap_or_else(|| E::from(error)));
    }
    let mut results = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        match outcome {
            Ok((_, Some(remote))) => return Err(E::from(Error::Dataflow(format!("another process failed: {remote}")))),
            Ok((Some(value), None)) => results.push(value),
            Ok((None, None)) => unreachable!("a worker's error is recorded in the computation"),
            Err(panic) => return Err(E::from(Error::Dataflow(format!("a worker panicked: {panic}")))),
        }
    }
    Ok(results)
}
