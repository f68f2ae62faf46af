//! The exactly-once sink's state machine, [`CommitSink`]: what it buffers
//! per time, when it sends outputs early, when it commits a transaction and
//! how it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use timely::scheduling::Activator;

use super::progress::ProgressRecord;
use super::sink::{Outgoing, PipelineStats};
use super::transactions::TransactionalWriter;
use crate::connect::source::binding::{is_partition, CLEAN_END, FAILED, STOPPED_AT};
use crate::error::{Error, Result};
use crate::runtime::status::Status;

/// When a sink commits.
#[derive(Clone, Copy, Debug)]
pub(super) struct CommitPolicy {
    pub(super) interval: Duration,
    pub(super) max_bytes: usize,
    /// Send outputs into the open transaction as they arrive (see [`Early`]).
    pub(super) send_early: bool,
    /// The longest a transaction holding early outputs stays open
    /// (`budget::max_open`): past `transaction.timeout.ms` the broker
    /// aborts it and fences the writer.
    pub(super) max_open: Duration,
}

/// Outputs sent ahead of their commit.
///
/// A commit sends its outputs and waits for them; in a run that reads its
/// input to the end, every output then waits for the one commit at the end
/// (measured: 0.25 s of a 1.05 s word_count run, 200,000 outputs). Sent as
/// they arrive, into the open transaction, the commit has little left to
/// send. A commit at frontier F may only hold outputs at times before F,
/// so a commit that falls due while outputs at later times were sent early
/// waits (at most one commit interval, and only while the transaction stays
/// under the size bound) for the frontier to pass them; past that, the
/// early records are aborted, committed the usual way, and this sink stops
/// sending early (a live input: its later times always run ahead of the
/// frontier). A transaction holding early outputs is aborted the same way
/// once it has been open for `budget::max_open` (a long run
/// at one time: the broker would abort it and fence the writer).
#[derive(Default)]
struct Early {
    /// Per time, how many of its buffered outputs were sent.
    sent: BTreeMap<u64, usize>,
    bytes: usize,
    since: Option<Instant>,
    stopped: bool,
}

impl Early {
    fn clear(&mut self) {
        self.sent.clear();
        self.bytes = 0;
        self.since = None;
    }

    /// Records sent early into the open transaction.
    fn records(&self) -> u64 {
        self.sent.values().map(|n| *n as u64).sum()
    }

    /// Counts what was sent early as aborted, and forgets it.
    fn forget(&mut self, status: &Status<PipelineStats>) {
        status.counters().aborted_early.fetch_add(self.records(), Ordering::Relaxed);
        self.clear();
    }

    /// Aborts what was sent early and sends nothing early any more.
    fn stop(&mut self, writer: &TransactionalWriter, status: &Status<PipelineStats>) -> Result<()> {
        self.forget(status);
        self.stopped = true;
        writer.abort_early()
    }

    /// Aborts what was sent early, on a failure: nothing is committed
    /// after it, so an abort that fails changes nothing.
    fn discard(&mut self, writer: &TransactionalWriter, status: &Status<PipelineStats>) {
        self.forget(status);
        let _ = writer.abort_early();
    }

    /// Whether outputs at `upto` or later were sent.
    fn beyond(&self, upto: u64) -> bool {
        self.sent.range(upto..).any(|(_, n)| *n > 0)
    }
}

/// Per time: the outputs and state changes at that time.
type Outputs<K, V> = BTreeMap<u64, Vec<Outgoing<K, V>>>;

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

/// The exactly-once sink of one worker, fed each activation's input batches
/// ([`CommitSink::on_outputs`], [`CommitSink::on_binding_reports`]) and then
/// its input frontier ([`CommitSink::on_frontier`]).
pub(super) struct CommitSink<K, V> {
    /// The transactional writer: worker 0's, `None` on every other worker
    /// (every input is exchanged to worker 0, which alone commits).
    writer: Option<TransactionalWriter>,
    /// The last commit (the resume point before any): outputs and binding
    /// reports at times before its frontier are not committed again.
    committed: ProgressRecord,
    policy: CommitPolicy,
    /// The pipeline's counters, completion and failure.
    status: Status<PipelineStats>,
    /// The outputs not committed yet.
    buffered: Outputs<K, V>,
    /// Per time not committed yet: per source partition, the largest next
    /// offset reported at that time (the binding a commit stores).
    reports: BTreeMap<u64, BTreeMap<u32, u64>>,
    /// The latest time of an output or of a partition's report.
    latest: Option<u64>,
    /// Workers whose source ended without a failure.
    ended: BTreeSet<u64>,
    /// Workers whose source failed.
    failed: BTreeSet<u64>,
    /// The least frontier a source told to stop reached.
    stopped_at: Option<u64>,
    /// When the last commit ended (the operator's start before any).
    last_commit: Instant,
    early: Early,
    /// The number of workers, each with a source that must end cleanly.
    peers: usize,
    /// Schedules the operator again when a commit falls due or a
    /// transaction holding early outputs must not stay open any longer.
    activator: Activator,
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> CommitSink<K, V> {
    pub(super) fn new(
        writer: Option<TransactionalWriter>,
        committed: ProgressRecord,
        policy: CommitPolicy,
        status: Status<PipelineStats>,
        peers: usize,
        activator: Activator,
    ) -> Self {
        CommitSink {
            writer,
            committed,
            policy,
            status,
            buffered: BTreeMap::new(),
            reports: BTreeMap::new(),
            latest: None,
            ended: BTreeSet::new(),
            failed: BTreeSet::new(),
            stopped_at: None,
            last_commit: Instant::now(),
            early: Early { stopped: !policy.send_early, ..Default::default() },
            peers,
            activator,
        }
    }

    /// Outputs at `time`: buffered, or dropped if an earlier instance
    /// committed their time.
    pub(super) fn on_outputs(&mut self, time: u64, records: &mut Vec<Outgoing<K, V>>) {
        self.latest = self.latest.max(Some(time));
        if time < self.committed.frontier {
            if let Some(writer) = self.writer.as_ref() {
                writer.crash_point("during-replay");
            }
            self.status.counters().dropped.fetch_add(records.len() as u64, Ordering::Relaxed);
            if let Some(metrics) = self.status.counters().metrics.get() {
                metrics.restore_dropped.increment(records.len() as u64);
            }
            records.clear();
        } else {
            self.buffered.entry(time).or_default().append(records);
        }
    }

    /// The sources' reports at `time`: partitions' next offsets (the
    /// binding), clean ends, failures and stops.
    pub(super) fn on_binding_reports(&mut self, time: u64, entries: &mut Vec<(u32, u64)>) {
        if entries.iter().any(is_partition) {
            self.latest = self.latest.max(Some(time));
        }
        for (partition, next) in entries.drain(..) {
            match partition {
                CLEAN_END => drop(self.ended.insert(next)),
                FAILED => drop(self.failed.insert(next)),
                STOPPED_AT => self.stopped_at = Some(self.stopped_at.map_or(next, |at: u64| at.min(next))),
                _ if time < self.committed.frontier => {}
                _ => {
                    let entry = self.reports.entry(time).or_default().entry(partition).or_default();
                    *entry = (*entry).max(next);
                }
            }
        }
    }

    /// After an activation's inputs, with the least time of the input
    /// frontiers (`None`: both closed): sends early, commits, or waits;
    /// an error is the sink's failure.
    pub(super) fn on_frontier(&mut self, frontier: Option<u64>) {
        // Taken out while the steps run: they use it and change the rest.
        let Some(writer) = self.writer.take() else { return };
        if let Err(error) = self.step(&writer, frontier) {
            self.fail(error);
        }
        self.writer = Some(writer);
    }

    /// What [`Self::on_frontier`] does on worker 0.
    fn step(&mut self, writer: &TransactionalWriter, frontier: Option<u64>) -> Result<()> {
        self.check_sources(writer);
        if self.status.failed_anywhere() {
            // A failed input never commits: its closed frontier is no end.
            self.buffered.clear();
            self.reports.clear();
            self.early.discard(writer, &self.status);
            return Ok(());
        }
        self.send_early(writer)?;
        self.limit_open_time(writer)?;
        // A closed frontier (input ended or stopped) commits everything
        // read: the next instance continues after it, never "complete".
        // Without a clean end from every worker's source, it closed
        // because something failed (maybe in another process): no commit.
        if frontier.is_none() && self.ended.len() < self.peers {
            self.fail_unclean_close(writer);
            return Ok(());
        }
        self.maybe_commit(writer, frontier)
    }

    /// Fails the sink if a source failed, maybe in another process: the
    /// frontier no longer says what was read. Commit nothing more.
    fn check_sources(&self, writer: &TransactionalWriter) {
        if let Some(worker) = self.failed.first().filter(|_| !self.status.is_failed()) {
            let message = format!(
                "{}: the source on worker {worker} failed (its error is reported there); nothing is committed \
                 after frontier {}",
                writer.what(),
                self.committed.frontier
            );
            self.status.fail("", Error::Dataflow(message));
        }
    }

    /// Fails the sink on an input that closed without a clean end from
    /// every worker's source.
    fn fail_unclean_close(&mut self, writer: &TransactionalWriter) {
        let message = format!(
            "{}: the input closed with a clean end from {} of {} sources (one failed or was not an exactly-once \
             source); nothing is committed after frontier {}",
            writer.what(),
            self.ended.len(),
            self.peers,
            self.committed.frontier
        );
        self.status.fail("", Error::Dataflow(message));
        self.early.discard(writer, &self.status);
    }

    /// Sends the buffered outputs not sent yet into the open transaction
    /// (see [`Early`]), unless sending early stopped or the transaction
    /// reached the size bound.
    fn send_early(&mut self, writer: &TransactionalWriter) -> Result<()> {
        if self.early.stopped || self.early.bytes >= self.policy.max_bytes {
            return Ok(());
        }
        let unsent = self.unsent();
        if unsent.is_empty() {
            return Ok(());
        }
        let records = unsent.iter().flat_map(|(time, from, to)| self.buffered[time][*from..*to].iter());
        let bytes: usize = records.clone().map(Outgoing::bytes).sum();
        if writer.send_early(records.map(Outgoing::out))? {
            for (time, _, to) in unsent {
                self.early.sent.insert(time, to);
            }
            self.early.bytes += bytes;
            // The broker's clock runs from the transaction's first send.
            self.early.since = self.early.since.or(writer.begun()).or_else(|| Some(Instant::now()));
        } else {
            // The writer aborted the transaction: nothing sent early is left.
            self.early.forget(&self.status);
            self.early.stopped = true;
        }
        Ok(())
    }

    /// Per time with buffered outputs not sent early: the time, and the
    /// range of its outputs not sent.
    fn unsent(&self) -> Vec<(u64, usize, usize)> {
        let mut unsent = Vec::new();
        for (time, records) in &self.buffered {
            let sent = self.early.sent.get(time).copied().unwrap_or(0);
            if records.len() > sent {
                unsent.push((*time, sent, records.len()));
            }
        }
        unsent
    }

    /// Aborts what was sent early once its transaction has been open for
    /// `policy.max_open`; until then, asks to be scheduled at that moment.
    fn limit_open_time(&mut self, writer: &TransactionalWriter) -> Result<()> {
        let Some(since) = self.early.since else { return Ok(()) };
        let open = since.elapsed();
        if open >= self.policy.max_open {
            return self.early.stop(writer, &self.status);
        }
        self.activator.activate_after(self.policy.max_open - open);
        Ok(())
    }

    /// Commits up to the frontier (a closed one: up to [`Self::end`]) if a
    /// commit is due; if not, asks to be scheduled when it will be.
    fn maybe_commit(&mut self, writer: &TransactionalWriter, frontier: Option<u64>) -> Result<()> {
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

    /// Whether a commit up to `upto` waits for the frontier to pass the
    /// outputs sent early at `upto` or later (see [`Early`]); past the
    /// wait, they are aborted and the commit goes ahead.
    fn waits_for_early(&mut self, writer: &TransactionalWriter, frontier: Option<u64>, upto: u64) -> Result<bool> {
        if !self.early.beyond(upto) {
            return Ok(false);
        }
        let waited = self.early.since.map_or(Duration::ZERO, |since| since.elapsed());
        if frontier.is_some() && waited < self.policy.interval && self.early.bytes < self.policy.max_bytes {
            self.activator.activate_after(self.policy.interval - waited);
            return Ok(true);
        }
        self.early.stop(writer, &self.status)?;
        Ok(false)
    }

    /// Commits, in one transaction, the outputs and binding reports at the
    /// times before `target`, or before an earlier time if the size bound
    /// says so ([`commit_frontier`]).
    fn commit(&mut self, writer: &TransactionalWriter, target: u64) -> Result<()> {
        let upto = commit_frontier(&self.buffered, target, self.policy.max_bytes);
        let progress = self.progress_upto(upto);
        let records = || self.buffered.range(..upto).flat_map(|(_, records)| records.iter().map(Outgoing::out));
        let rest = self.buffered.range(..upto).flat_map(|(time, records)| {
            records[self.early.sent.get(time).copied().unwrap_or(0)..].iter().map(Outgoing::out)
        });
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

    /// Records `error` as the sink's failure and forgets everything not
    /// committed: nothing is committed after a failure.
    fn fail(&mut self, error: Error) {
        self.status.fail("", error);
        self.buffered.clear();
        self.reports.clear();
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
