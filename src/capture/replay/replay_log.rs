//! `streams.replay_log(scope)`: timely's `replay_into`, paced for a log.
//!
//! timely's `replay_into` reschedules its operator on every step, so a
//! worker replaying from a log that has nothing new spins on a core the
//! log's client threads need. `replay_core` with a period fixes that, but
//! leaves the period to every program; this trait fixes it once, with the
//! period [`step_until_done`](crate::step_until_done) parks for, as timely's
//! own `Replay` trait is used (on anything that iterates over
//! [`EventConsumer`](crate::EventConsumer)s, or other `EventIterator`s).

use timely::dataflow::operators::capture::event::EventIterator;
use timely::dataflow::operators::capture::Replay;
use timely::dataflow::{Scope, Stream};
use timely::progress::Timestamp;
use timely::Container;

use crate::runtime::REPLAY_PERIOD;

/// Replays captured streams into a scope, rescheduling the replay after a
/// short period rather than on every step, so an idle worker parks.
///
/// ```
/// use timely::dataflow::operators::{Inspect, Probe};
/// use timely_kafka::{execute, replay, step_until_done, FileLog, ReplayLog, ReplayOptions};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let log = FileLog::new(dir.path());
/// # execute(timely::Config::thread(), { let log = log.clone(); move |worker| {
/// #     use timely::dataflow::operators::{Capture, ToStream};
/// #     let producer = timely_kafka::capture(worker, &log, "numbers", Default::default())?;
/// #     worker.dataflow::<u64, _, _>(|scope| (0..10u64).to_stream(scope).container::<Vec<u64>>().capture_into(producer));
/// #     Ok(())
/// # }})?;
/// execute(timely::Config::thread(), move |worker| {
///     let streams = replay(worker, &log, "numbers", ReplayOptions::default())?;
///     let probe = worker.dataflow::<u64, _, _>(|scope| {
///         streams.replay_log(scope).container::<Vec<u64>>().inspect(|x| println!("{x}")).probe().0
///     });
///     step_until_done(worker, &probe);
///     Ok(())
/// })?;
/// # Ok(())
/// # }
/// ```
pub trait ReplayLog<T: Timestamp, C> {
    /// The replayed stream, in `scope`.
    fn replay_log<'scope>(self, scope: Scope<'scope, T>) -> Stream<'scope, T, C>;
}

impl<I, T, C> ReplayLog<T, C> for I
where
    I: IntoIterator,
    I::Item: EventIterator<T, C> + 'static,
    T: Timestamp,
    C: Container + Clone,
{
    fn replay_log<'scope>(self, scope: Scope<'scope, T>) -> Stream<'scope, T, C> {
        self.replay_core(scope, Some(REPLAY_PERIOD))
    }
}
