//! Exactly-once reading: the binding of source offsets to times.
//!
//! A pipeline's commit stores a frontier `F` and, per source partition, the
//! offset `o` bound to it: every record below `o` got a time before `F`,
//! every record at or after `o` gets a time at or after `F`. That is all a
//! restart needs to be consistent with what was committed, whatever the
//! time function: outputs before `F` are never written again, and outputs at
//! or after `F` were never committed, so they may come out at other times
//! than in the run that died, as long as no record crosses `F`.
//!
//! So the source, in exactly-once mode:
//! - makes times monotone in offset per partition (a record's time is at
//!   least that of the record before it), which makes "below `o`" and
//!   "before `F`" the same thing for every later commit;
//! - clamps: a record below `o` gets at most `F - 1`, one at or after `o` at
//!   least `F` (a record below `o` computing a time at or after `F` can only
//!   come from a changed time function or an idle-partition clamp of the
//!   earlier run; its contribution still lands before `F`, where the
//!   committed state has it);
//! - never counts a partition still below its bound offset as idle, so the
//!   frontier cannot pass `F - 1` before every record below the binding was
//!   read again;
//! - reports, at each time `t`, the next offset of every partition that
//!   delivered (or dropped) records at `t`: the sink's commit at frontier
//!   `F'` takes, per partition, the largest such offset at times before `F'`;
//! - reports, when it ends without a failure (its input's end, or told to
//!   stop), a *clean end* from its worker. The sink commits a closed frontier
//!   only with a clean end from every worker;
//! - reports, when told to stop, the frontier it reached (the least
//!   watermark of its partitions, as its capability would have been): a
//!   stop is no end of input, so the closed frontier commits only up to the
//!   least of these, never past records a lagging partition or a replay
//!   below its binding has not read yet;
//! - reports, when it fails, the failure from its worker before releasing
//!   its capability: the sink on worker 0, maybe in another process (which
//!   learns of the failure only when the computation ends), commits nothing
//!   more.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::reader::PartitionState;

/// The "partition" of a clean-end report (no Kafka partition has it).
pub(crate) const CLEAN_END: u32 = u32::MAX;

/// The report of worker `index`'s source ending without a failure.
pub(crate) fn clean_end(index: usize) -> (u32, u64) {
    (CLEAN_END, index as u64)
}

/// The "partition" of a failure report.
pub(crate) const FAILED: u32 = u32::MAX - 1;

/// The report of worker `index`'s source failing.
pub(crate) fn failed(index: usize) -> (u32, u64) {
    (FAILED, index as u64)
}

/// The "partition" of a stop report: its offset is the frontier reached.
pub(crate) const STOPPED_AT: u32 = u32::MAX - 2;

/// The report of a source told to stop having reached `frontier`.
pub(crate) fn stopped_at(frontier: u64) -> (u32, u64) {
    (STOPPED_AT, frontier)
}

/// Whether a report is about a partition (not a marker).
pub(crate) fn is_partition(report: &(u32, u64)) -> bool {
    report.0 < STOPPED_AT
}

/// Where an exactly-once source resumes: the committed frontier and binding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceResume {
    /// The committed frontier `F` (0: nothing committed yet).
    pub frontier: u64,
    /// Per partition, the offset bound to `frontier`.
    pub offsets: BTreeMap<u32, u64>,
    /// Per partition, where the pipeline's input begins (the state covers
    /// every record from here).
    pub starts: BTreeMap<u32, u64>,
    /// Read every partition again from its start (stateful computations:
    /// the state at `F` is rebuilt from the records below the binding, whose
    /// outputs the sink drops) instead of seeking to the bound offsets
    /// (stateless ones).
    pub replay_from_start: bool,
    /// The topic the binding is of (the pipeline's input): a source built
    /// on another topic refuses to start. `None`: not checked.
    pub topic: Option<String>,
}

impl SourceResume {
    /// The offset partition `p` is bound to.
    pub fn bound(&self, partition: u32) -> u64 {
        self.offsets.get(&partition).copied().unwrap_or_else(|| self.start(partition))
    }

    /// Where the pipeline's input of partition `p` begins.
    pub fn start(&self, partition: u32) -> u64 {
        self.starts.get(&partition).copied().unwrap_or(0)
    }

    /// Where reading partition `p` starts now.
    pub fn read_from(&self, partition: u32) -> u64 {
        if self.replay_from_start {
            self.start(partition)
        } else {
            self.bound(partition)
        }
    }
}

/// The source's side of the binding.
pub(super) struct Binder {
    resume: SourceResume,
    initialized: HashSet<u32>,
    /// Per (time, partition): the next offset after the records at that time.
    reported: HashMap<(u64, u32), u64>,
}

impl Binder {
    pub(super) fn new(resume: SourceResume) -> Self {
        Binder { resume, initialized: HashSet::new(), reported: HashMap::new() }
    }

    /// Gives newly assigned partitions their first position and watermark:
    /// a partition with nothing to read below its binding starts at `F`.
    pub(super) fn initialize(&mut self, partitions: &mut BTreeMap<u32, PartitionState>) {
        for (partition, state) in partitions.iter_mut() {
            if self.initialized.insert(*partition) {
                let from = self.resume.read_from(*partition);
                state.next_offset = from;
                if from >= self.resume.bound(*partition) {
                    state.watermark = state.watermark.max(self.resume.frontier);
                }
            }
        }
    }

    /// The time of the record at `offset` of `partition`, given the time
    /// already made monotone.
    pub(super) fn time(&self, partition: u32, offset: u64, time: u64) -> u64 {
        if offset < self.resume.bound(partition) {
            time.min(self.resume.frontier.saturating_sub(1))
        } else {
            time.max(self.resume.frontier)
        }
    }

    /// Whether `partition`, next reading `next_offset`, still has records
    /// below its binding to read (it must not be counted as idle).
    pub(super) fn below(&self, partition: u32, next_offset: u64) -> bool {
        next_offset < self.resume.bound(partition)
    }

    /// Notes that the record at `offset` of `partition` got `time`.
    pub(super) fn report(&mut self, time: u64, partition: u32, offset: u64) {
        let next = self.reported.entry((time, partition)).or_default();
        *next = (*next).max(offset + 1);
    }

    /// The reports since the last call, as `(time, (partition, next offset))`.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = (u64, (u32, u64))> + '_ {
        self.reported.drain().map(|((time, partition), next)| (time, (partition, next)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn resume(frontier: u64, bound: &[(u32, u64)], replay_from_start: bool) -> SourceResume {
        SourceResume {
            frontier,
            offsets: bound.iter().copied().collect(),
            starts: bound.iter().map(|(p, _)| (*p, 0)).collect(),
            replay_from_start,
            topic: None,
        }
    }

    fn state() -> PartitionState {
        PartitionState {
            watermark: 0,
            last_record: Instant::now(),
            end: None,
            end_pending: false,
            done: false,
            next_offset: 0,
            at_end: false,
        }
    }

    #[test]
    fn records_stay_on_their_side_of_the_committed_frontier() {
        let binder = Binder::new(resume(10, &[(0, 5)], true));
        // Below the binding: before F, whatever the time function says.
        assert_eq!(binder.time(0, 4, 3), 3);
        assert_eq!(binder.time(0, 4, 25), 9);
        // At or after it: at F or later.
        assert_eq!(binder.time(0, 5, 3), 10);
        assert_eq!(binder.time(0, 6, 25), 25);
        // A partition the commit does not name is bound at its start (0).
        assert_eq!(binder.time(7, 0, 3), 10);
    }

    #[test]
    fn nothing_committed_changes_no_time() {
        let binder = Binder::new(SourceResume::default());
        assert_eq!((binder.time(0, 0, 0), binder.time(3, 9, 42)), (0, 42));
        assert!(!binder.below(0, 0));
    }

    #[test]
    fn replay_from_start_reads_below_the_binding_and_seeking_does_not() {
        let mut partitions: BTreeMap<u32, PartitionState> = [(0, state()), (1, state())].into();
        let mut binder = Binder::new(resume(10, &[(0, 5), (1, 0)], true));
        binder.initialize(&mut partitions);
        // Partition 0 re-reads from 0 (below its binding: never idle), at times
        // from 0; partition 1 has nothing below its binding: it starts at F.
        assert_eq!((partitions[&0].next_offset, partitions[&0].watermark), (0, 0));
        assert_eq!((partitions[&1].next_offset, partitions[&1].watermark), (0, 10));
        assert!(binder.below(0, 0) && binder.below(0, 4) && !binder.below(0, 5));

        let mut partitions: BTreeMap<u32, PartitionState> = [(0, state())].into();
        let mut binder = Binder::new(resume(10, &[(0, 5)], false));
        binder.initialize(&mut partitions);
        assert_eq!((partitions[&0].next_offset, partitions[&0].watermark), (5, 10));
        assert!(!binder.below(0, 5));
    }

    #[test]
    fn reports_carry_the_next_offset_per_time_and_partition() {
        let mut binder = Binder::new(SourceResume::default());
        binder.report(1, 0, 3);
        binder.report(1, 0, 7);
        binder.report(1, 1, 2);
        binder.report(2, 0, 8);
        let mut reports: Vec<_> = binder.drain().collect();
        reports.sort();
        assert_eq!(reports, vec![(1, (0, 8)), (1, (1, 3)), (2, (0, 9))]);
        assert_eq!(binder.drain().count(), 0);
    }
}
