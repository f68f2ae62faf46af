//! The producer's side of exactly-once capture: when to commit, and how a
//! resumed capture continues the stream it resumes.
//!
//! **When to commit.** A commit is worth writing only after the frontier
//! moved (otherwise it covers nothing new), and each costs a small record,
//! so commits are batched: one once the frontier has moved and either the
//! commit interval has passed or the uncommitted bytes exceed a bound, and
//! always when the frontier becomes empty (the final commit). A commit can
//! be written between any two events: its state is the stream's progress
//! state after everything written before it.
//!
//! **Resuming.** A resumed capture's dataflow starts over, at timely's
//! minimum time, and its caller replays its input from a frontier at or
//! before this partition's committed frontier `F` (the meet of every
//! worker's, see [`crate::capture::worker::resume`]: records may reach this
//! partition from other workers' inputs). The stream it continues is
//! already at `F`, so the producer translates: the frontier it writes is
//! `max(N, F)` for the new dataflow's frontier `N` (so the replayed frontier
//! never moves backwards, and nothing is written while the input catches up
//! to `F`), and it drops messages whose times are all not beyond `F` (they
//! were committed before the crash). A complete stream (`F` empty) drops
//! everything and stays complete. This needs totally ordered timestamps.

use std::time::{Duration, Instant};

use timely::order::TotalOrder;
use timely::progress::frontier::{Antichain, MutableAntichain};
use timely::progress::{ChangeBatch, Timestamp};

use crate::capture::exactly_once::rules::committed_at;

/// Settings of an exactly-once capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitOptions {
    /// Longest time between a frontier advance and its commit while events
    /// keep arriving (a pending commit is written with the next event).
    pub commit_interval: Duration,
    /// Commit as soon as the frontier moves once this many bytes are uncommitted.
    pub max_uncommitted_bytes: u64,
}

impl Default for CommitOptions {
    fn default() -> Self {
        CommitOptions { commit_interval: Duration::from_millis(100), max_uncommitted_bytes: 32 << 20 }
    }
}

/// Computes a resumed stream's frontier from the new dataflow's frontier.
type Translate<T> = fn(&MutableAntichain<T>, &Antichain<T>) -> Antichain<T>;

/// A resumed capture's view of the stream it continues.
struct Resumed<T> {
    /// The committed frontier the resume continues from.
    from: Antichain<T>,
    /// The new dataflow's own progress.
    upstream: MutableAntichain<T>,
    translate: Translate<T>,
}

/// The commit bookkeeping of one exactly-once producer.
pub(crate) struct CommitState<T> {
    options: CommitOptions,
    /// Progress counts of the stream written so far (what replay holds).
    state: ChangeBatch<T>,
    pending: bool,
    last_commit: Instant,
    uncommitted_bytes: u64,
    resumed: Option<Resumed<T>>,
}

impl<T: Timestamp> CommitState<T> {
    /// A new stream: its state is timely's initial capability.
    pub(crate) fn new(options: CommitOptions) -> Self {
        Self::continuing(options, vec![(T::minimum(), 1)])
    }

    fn continuing(options: CommitOptions, state: Vec<(T, i64)>) -> Self {
        let mut batch: ChangeBatch<T> = ChangeBatch::new();
        batch.extend(state.into_iter());
        CommitState {
            options,
            state: batch,
            pending: false,
            last_commit: Instant::now(),
            uncommitted_bytes: 0,
            resumed: None,
        }
    }

    /// A resumed stream whose last commit had `state` (frontier `from`).
    pub(crate) fn resumed(options: CommitOptions, state: Vec<(T, i64)>, from: Antichain<T>) -> Self
    where
        T: TotalOrder,
    {
        let mut commits = Self::continuing(options, state);
        commits.resumed =
            Some(Resumed { from, upstream: MutableAntichain::from_elem(T::minimum()), translate: max_frontier });
        commits
    }

    /// The progress to write for the dataflow's `updates`: unchanged for a
    /// new stream, translated for a resumed one (`None`: nothing to write).
    pub(crate) fn progress(&mut self, updates: &[(T, i64)]) -> Option<Vec<(T, i64)>> {
        let written = match &mut self.resumed {
            None => updates.to_vec(),
            Some(resumed) => {
                resumed.upstream.update_iter(updates.iter().cloned());
                let target = (resumed.translate)(&resumed.upstream, &resumed.from);
                let mut delta: ChangeBatch<T> = ChangeBatch::new();
                delta.extend(target.elements().iter().map(|t| (t.clone(), 1)));
                delta.extend(self.state.iter().map(|(t, d)| (t.clone(), -d)));
                delta.into_inner().into_vec()
            }
        };
        if written.is_empty() {
            return None;
        }
        self.state.extend(written.iter().cloned());
        self.pending = true;
        Some(written)
    }

    /// Whether a resumed capture drops a message stamped `stamp`: it was
    /// committed before the resume.
    pub(crate) fn drops(&self, stamp: &[T]) -> bool {
        match &self.resumed {
            Some(resumed) => committed_at(stamp, &resumed.from),
            None => false,
        }
    }

    /// Counts bytes written since the last commit.
    pub(crate) fn wrote(&mut self, bytes: usize) {
        self.uncommitted_bytes += bytes as u64;
    }

    /// Whether a commit is due now (`final_`: the frontier just became empty).
    pub(crate) fn due(&self, final_: bool) -> bool {
        final_
            || (self.pending
                && (self.last_commit.elapsed() >= self.options.commit_interval
                    || self.uncommitted_bytes >= self.options.max_uncommitted_bytes))
    }

    /// The state to commit; resets the batching counters.
    pub(crate) fn take_commit(&mut self) -> Vec<(T, i64)> {
        self.pending = false;
        self.last_commit = Instant::now();
        self.uncommitted_bytes = 0;
        self.state.compact();
        self.state.iter().cloned().collect()
    }
}

/// `max(N, F)` for totally ordered times: the later of the two frontiers
/// (empty once either is empty: a complete stream stays complete).
fn max_frontier<T: Timestamp + TotalOrder>(upstream: &MutableAntichain<T>, from: &Antichain<T>) -> Antichain<T> {
    if from.is_empty() {
        return Antichain::new();
    }
    let Some(now) = upstream.frontier().iter().next().cloned() else { return Antichain::new() };
    match from.elements().first() {
        Some(from) if now.less_than(from) => Antichain::from_elem(from.clone()),
        _ => Antichain::from_elem(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_stream_never_moves_its_frontier_back() {
        let mut commits = CommitState::<u64>::resumed(CommitOptions::default(), vec![(7, 1)], Antichain::from_elem(7));
        // The new dataflow starts at 0 and drops its initial capability for 3.
        assert_eq!(commits.progress(&[(0, -1), (3, 1)]), None);
        assert!(commits.drops(&[5]));
        assert!(!commits.drops(&[7]));
        let mut moved = commits.progress(&[(3, -1), (9, 1)]).unwrap();
        moved.sort();
        assert_eq!(moved, vec![(7, -1), (9, 1)]);
        let mut done = commits.progress(&[(9, -1)]).unwrap();
        done.sort();
        assert_eq!(done, vec![(9, -1)]);
        assert!(commits.take_commit().is_empty());
    }

    #[test]
    fn an_input_restarted_before_the_committed_frontier_writes_nothing_until_it_passes() {
        let mut commits = CommitState::<u64>::resumed(CommitOptions::default(), vec![(7, 2)], Antichain::from_elem(7));
        // Restarted at 2 (the meet of the workers' frontiers): times 2..7
        // were committed here, so neither their messages nor progress count.
        assert_eq!(commits.progress(&[(0, -1), (2, 1)]), Some(vec![(7, -1)]));
        assert!(commits.drops(&[2]) && commits.drops(&[6]) && !commits.drops(&[7]));
        assert_eq!(commits.progress(&[(2, -1), (5, 1)]), None);
        let mut moved = commits.progress(&[(5, -1), (8, 1)]).unwrap();
        moved.sort();
        assert_eq!(moved, vec![(7, -1), (8, 1)]);
    }

    #[test]
    fn a_complete_stream_drops_everything_and_writes_no_progress() {
        let mut commits = CommitState::<u64>::resumed(CommitOptions::default(), Vec::new(), Antichain::new());
        assert_eq!(commits.progress(&[(0, -1), (3, 1)]), None);
        assert!(commits.drops(&[0]) && commits.drops(&[u64::MAX]));
        assert_eq!(commits.progress(&[(3, -1)]), None);
    }
}
