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
//!   `F'` takes, per partition, the largest such offset at times before `F'`.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::reader::PartitionState;

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
