//! Capture and replay of differential-dataflow collections (cargo feature
//! `differential`).
//!
//! A `VecCollection<T, D, R>` is a timely stream of `Vec<(D, T, R)>` update
//! batches whose progress says when a time is final, so capturing its
//! `inner` stream and replaying it as a collection needs nothing else:
//! every update and every frontier advance travels, and the replayed
//! collection accumulates to the same contents at every time. The replay can
//! use any worker count; differential's operators exchange by key
//! themselves, so a replayed collection can be joined or reduced at once.
//!
//! ```
//! use differential_dataflow::input::Input;
//! use timely::dataflow::operators::{Inspect, Probe};
//! use timely_kafka::differential::{CaptureCollection, ReplayCollection};
//! use timely_kafka::{capture, execute, replay, step_until_done, CaptureOptions, EventConsumer, FileLog, ReplayOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let log = FileLog::new(dir.path());
//! let capture_log = log.clone();
//! execute(timely::Config::process(2), move |w| {
//!     let producer = capture(w, &capture_log, "pairs", CaptureOptions::default())?;
//!     let mut input = w.dataflow::<u64, _, _>(|scope| {
//!         let (input, pairs) = scope.new_collection::<(u64, u64), isize>();
//!         pairs.capture_updates(producer);
//!         input
//!     });
//!     for round in 0..10u64 {
//!         input.insert((round % 3, round + 10 * w.index() as u64));
//!         input.advance_to(round + 1);
//!     }
//!     Ok(())
//! }).unwrap();
//!
//! let counts = execute(timely::Config::thread(), move |w| {
//!     let streams: Vec<EventConsumer<u64, Vec<((u64, u64), u64, isize)>>> = replay(w, &log, "pairs", ReplayOptions::default())?;
//!     let total = std::rc::Rc::new(std::cell::Cell::new(0isize));
//!     let sink = total.clone();
//!     let probe = w.dataflow::<u64, _, _>(|scope| {
//!         streams.replay_collection(scope).map(|(key, _)| key).count()
//!             .inner.inspect(move |((_, count), _, diff)| sink.set(sink.get() + count * diff)).probe().0
//!     });
//!     step_until_done(w, &probe);
//!     Ok(total.get())
//! }).unwrap();
//! assert_eq!(counts, vec![20]);
//! ```

use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::operators::capture::event::{EventIterator, EventPusher};
use timely::dataflow::operators::capture::Replay;
use timely::dataflow::operators::Capture;
use timely::dataflow::Scope;
use timely::progress::Timestamp;

use crate::runtime::REPLAY_PERIOD;

/// Captures a collection's updates and progress.
pub trait CaptureCollection<T: Timestamp, D, R> {
    /// Hands every update batch and progress change to `pusher`, usually an
    /// [`crate::EventProducer`] of this worker's partition.
    fn capture_updates<P: EventPusher<T, Vec<(D, T, R)>> + 'static>(self, pusher: P);
}

impl<T, D, R> CaptureCollection<T, D, R> for VecCollection<'_, T, D, R>
where
    T: Timestamp,
    D: Clone + 'static,
    R: Clone + 'static,
{
    fn capture_updates<P: EventPusher<T, Vec<(D, T, R)>> + 'static>(self, pusher: P) {
        self.inner.capture_into(pusher);
    }
}

/// Replays captured updates as a collection.
pub trait ReplayCollection<T: Timestamp, D, R> {
    /// The collection the captured updates describe, in `scope`.
    fn replay_collection<'scope>(self, scope: Scope<'scope, T>) -> VecCollection<'scope, T, D, R>;
}

impl<I, T, D, R> ReplayCollection<T, D, R> for I
where
    I: IntoIterator,
    I::Item: EventIterator<T, Vec<(D, T, R)>> + 'static,
    T: Timestamp,
    D: Clone + 'static,
    R: Clone + 'static,
{
    fn replay_collection<'scope>(self, scope: Scope<'scope, T>) -> VecCollection<'scope, T, D, R> {
        // Rescheduled after the replay period, not at once, so a worker with
        // nothing to read parks (see [`crate::step_until_done`]).
        self.replay_core(scope, Some(REPLAY_PERIOD)).as_collection()
    }
}
