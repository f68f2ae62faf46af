//! When the sink commits and what a commit covers: the outputs and
//! binding reports at the times before a commit frontier, and the progress
//! record that says so.
//!
//! A commit falls due when the frontier advanced and the commit interval
//! passed, or at once when the input closed or the buffered outputs exceed
//! the size bound; the size bound also cuts one commit into several
//! transactions at time boundaries, so that no transaction grows without
//! bound.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::super::progress::ProgressRecord;
use super::super::sink::Outgoing;
use super::super::transactions::TransactionalWriter;
use super::{CommitSink, Outputs};
use crate::error::Result;

/// The commit frontier: `target`, or earlier where the outputs of the
/// times before it already exceed `max_bytes` (transactions stay bounded).
fn commit_frontier<K: AsRef<[u8]>, V: AsRef<[u8]>>(outputs: &Outputs<K, V>, target: u64, max_bytes: usize) -> u64 {
    let mut bytes = 0;
    for (time, records) in outputs.range(..target) {
        bytes += records.iter().map(Outgoing::bytes).sum::<usize>();
        if bytes >= max_bytes {
            return time + 1;
        }
    }
    target
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> CommitSink<K, V> {
    /// Commits up to the frontier (a closed one: up to [`Self::end`]) if a
    /// commit is due; if not, asks to be scheduled when it will be.
    pub(super) fn maybe_commit(&mut self, writer: &TransactionalWriter, frontier: Option<u64>) -> Result<()> {
        let target = frontier.unwrap_or_else(|| self.end());
        if target <= self.committed.frontier {
            if frontier.is_none() {
                self.status.set_complete();
            }
            return Ok(());
        }
        let upto = commit_frontier(&self.buffered, target, self.policy.max_bytes);
        let due = frontier.is_none() || upto < target || self.last_commit.elapsed() >= self.policy.interval;
        if !due {
            self.activator.activate_after(self.policy.interval.saturating_sub(self.last_commit.elapsed()));
            return Ok(());
        }
        if self.waits_for_early(writer, frontier, upto)? {
            return Ok(());
        }
        // Commit up to `target`, in several transactions if the size
        // bound says so, all in this activation: once its inputs have
        // closed, the operator may never be scheduled again.
        while self.committed.frontier < target {
            self.commit(writer, target)?;
        }
        if frontier.is_none() {
            self.status.set_complete();
        }
        Ok(())
    }

    /// Where a closed frontier commits up to: one past the latest time
    /// read at the input's end; after a stop, only what every source
    /// reached.
    fn end(&self) -> u64 {
        let resume = self.committed.frontier;
        let end = self.latest.map_or(resume, |t| t + 1).max(resume);
        self.stopped_at.map_or(end, |at| end.min(at))
    }

    /// Commits, in one transaction, the outputs and binding reports at the
    /// times before `target`, or before an earlier time if the size bound
    /// says so ([`commit_frontier`]).
    fn commit(&mut self, writer: &TransactionalWriter, target: u64) -> Result<()> {
        let upto = commit_frontier(&self.buffered, target, self.policy.max_bytes);
        let progress = self.progress_upto(upto);
        let records = || self.buffered.range(..upto).flat_map(|(_, records)| records.iter().map(Outgoing::out));
        let rest = self
            .buffered
            .range(..upto)
            .flat_map(|(time, records)| records[self.early.sent_at(*time)..].iter().map(Outgoing::out));
        let started = Instant::now();
        let committed_now = writer.commit(rest, records, &progress);
        self.early.clear();
        let progress = committed_now?;
        let (mut written, mut changes) = (0, 0);
        for record in self.buffered.range(..upto).flat_map(|(_, records)| records) {
            match record {
                Outgoing::Output(..) => written += 1,
                Outgoing::Change(..) => changes += 1,
            }
        }
        self.status.counters().written.fetch_add(written, Ordering::Relaxed);
        self.status.counters().changes.fetch_add(changes, Ordering::Relaxed);
        self.status.counters().commits.fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = self.status.counters().metrics.get() {
            let bytes = self.buffered.range(..upto).flat_map(|(_, r)| r).map(|record| {
                let (_, key, value) = record.out();
                key.len() + value.map_or(0, <[u8]>::len)
            });
            metrics.committed(written as usize, bytes.sum(), upto, &progress.offsets, started.elapsed());
        }
        writer.crash_point("after-commit");
        self.status.counters().frontier.store(upto, Ordering::Relaxed);
        self.buffered = self.buffered.split_off(&upto);
        self.reports = self.reports.split_off(&upto);
        self.committed = progress;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// The progress record of a commit up to `upto`: the last commit's,
    /// with the binding reports at the times before `upto`.
    fn progress_upto(&self, upto: u64) -> ProgressRecord {
        let mut progress = self.committed.clone();
        progress.commit += 1;
        progress.frontier = upto;
        for entries in self.reports.range(..upto).map(|(_, entries)| entries) {
            for (partition, next) in entries {
                let entry = progress.offsets.entry(*partition).or_default();
                *entry = (*entry).max(*next);
            }
        }
        progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_stops_at_the_time_boundary_past_the_size_bound() {
        let outputs: Outputs<Vec<u8>, Vec<u8>> =
            (0..10u64).map(|t| (t * 2, vec![Outgoing::Output(vec![0u8; 10], vec![0u8; 90]); 3])).collect();
        // 300 bytes per time.
        assert_eq!(commit_frontier(&outputs, 20, 1 << 20), 20);
        assert_eq!(commit_frontier(&outputs, 20, 300), 1);
        assert_eq!(commit_frontier(&outputs, 20, 700), 5);
        assert_eq!(commit_frontier(&outputs, 3, 700), 3);
        assert_eq!(commit_frontier(&Outputs::<Vec<u8>, Vec<u8>>::new(), 7, 1), 7);
    }
}
