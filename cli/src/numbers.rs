//! The stream `capture_send` captures: `count` numbers per worker, as `u64`.
//!
//! Worker `w` of `peers` sends `w, w + peers, w + 2 * peers, ...` (its `i`-th
//! number is `w + peers * i`), so every worker sends different records and the
//! whole capture is exactly `0..count * peers`: a replay that delivered one
//! partition twice and lost another cannot match its count, sum and
//! fingerprint by accident.
//!
//! By default every number is at time 0. [`Numbers`] spreads them over time
//! (a worker's `i`-th number at time `i / per_time`, so the frontier advances
//! as they are produced), starts at a given time (a resumed capture
//! regenerates only the times at or beyond its restart frontier), and limits
//! the rate.
//!
//! Built batch by batch (1024 numbers per container, as timely's own
//! container builder does) instead of through `to_stream`'s per-record
//! pushes, so a benchmark of capture measures capture rather than the
//! generator. The timely baseline in `benches/` uses the same generator.

use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

/// Numbers per container, like timely's default container capacity for `u64`.
pub const BATCH: u64 = 1024;

/// Containers emitted per activation before yielding to downstream operators.
const BATCHES_PER_ACTIVATION: u64 = 64;

/// The `i`-th number of worker `worker` of `peers`.
pub fn value_of(worker: u64, peers: u64, i: u64) -> u64 {
    worker + peers * i
}

/// This worker's `count` numbers (see the module doc), at time 0, in
/// containers of [`BATCH`] numbers.
pub fn numbers<'scope>(scope: Scope<'scope, u64>, count: u64) -> Stream<'scope, u64, Vec<u64>> {
    let (worker, peers) = (scope.index() as u64, scope.peers() as u64);
    source(scope, "Numbers", move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut capability = Some(capability);
        let mut next = 0u64;
        move |output| {
            let Some(cap) = capability.as_ref() else { return };
            let mut session = output.session(cap);
            for _ in 0..BATCHES_PER_ACTIVATION {
                if next >= count {
                    break;
                }
                let end = (next + BATCH).min(count);
                let mut batch: Vec<u64> = (next..end).map(|i| value_of(worker, peers, i)).collect();
                session.give_container(&mut batch);
                next = end;
            }
            drop(session);
            if next >= count {
                capability = None;
            } else {
                activator.activate();
            }
        }
    })
}

/// How [`timed_numbers`] produces a worker's `count` numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Numbers {
    /// How many numbers per worker.
    pub count: u64,
    /// Numbers per timestamp: a worker's `i`-th number is at time `i / per_time`
    /// (`None`: all at time 0).
    pub per_time: Option<u64>,
    /// First time produced: numbers at earlier times are skipped.
    pub from_time: u64,
    /// At most this many numbers per second (`None`: no limit).
    pub rate: Option<u64>,
}

impl Numbers {
    /// The time of number `i`.
    pub fn time_of(&self, i: u64) -> u64 {
        self.per_time.map_or(0, |k| i / k.max(1))
    }

    /// The first number at or beyond `from_time`.
    fn first(&self) -> u64 {
        match self.per_time {
            None if self.from_time == 0 => 0,
            None => self.count,
            Some(k) => self.from_time.saturating_mul(k.max(1)).min(self.count),
        }
    }

    /// One past the last number at the time of number `i`.
    fn time_end(&self, i: u64) -> u64 {
        match self.per_time {
            None => self.count,
            Some(k) => ((i / k.max(1)) + 1).saturating_mul(k.max(1)).min(self.count),
        }
    }
}

/// The numbers of `spec` at their times, in containers of at most [`BATCH`]
/// numbers (never spanning two times); the capability follows the times.
pub fn timed_numbers<'scope>(scope: Scope<'scope, u64>, spec: Numbers) -> Stream<'scope, u64, Vec<u64>> {
    let (worker, peers) = (scope.index() as u64, scope.peers() as u64);
    source(scope, "TimedNumbers", move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut next = spec.first();
        let mut capability = Some(capability);
        if let Some(cap) = capability.as_mut() {
            cap.downgrade(&spec.time_of(next).max(spec.from_time));
        }
        let started = std::time::Instant::now();
        let mut produced = 0u64;
        move |output| {
            let Some(cap) = capability.as_mut() else { return };
            for _ in 0..BATCHES_PER_ACTIVATION {
                if next >= spec.count {
                    break;
                }
                if let Some(rate) = spec.rate {
                    let allowed = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                    if produced >= allowed {
                        activator.activate_after(std::time::Duration::from_millis(5));
                        return;
                    }
                }
                let time = spec.time_of(next);
                if *cap.time() < time {
                    cap.downgrade(&time);
                }
                let mut end = (next + BATCH).min(spec.time_end(next));
                if let Some(rate) = spec.rate {
                    end = end.min(next + rate.clamp(1, BATCH));
                }
                let mut batch: Vec<u64> = (next..end).map(|i| value_of(worker, peers, i)).collect();
                output.session(&*cap).give_container(&mut batch);
                produced += end - next;
                next = end;
            }
            if next >= spec.count {
                capability = None;
            } else {
                if spec.time_of(next) > *cap.time() {
                    cap.downgrade(&spec.time_of(next));
                }
                activator.activate();
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_starting_points() {
        let spec = Numbers { count: 10, per_time: Some(3), from_time: 2, rate: None };
        assert_eq!(spec.first(), 6);
        assert_eq!(spec.time_of(7), 2);
        assert_eq!(spec.time_end(7), 9);
        assert_eq!(spec.time_end(9), 10);
        let all_at_zero = Numbers { count: 10, per_time: None, from_time: 0, rate: None };
        assert_eq!((all_at_zero.first(), all_at_zero.time_end(3)), (0, 10));
    }
}
