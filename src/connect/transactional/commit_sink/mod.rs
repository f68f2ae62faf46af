//! The exactly-once sink's state machine, [`CommitSink`]: what it buffers
//! per time, when it sends outputs early, when it commits a transaction and
//! how it fails.
//!
//! This file holds what the sink is fed (outputs, the sources' binding
//! reports, the frontier) and how it fails; `early` is the sending of
//! outputs ahead of their commit, `commit` when a commit is due and what
//! it covers.

mod commit;
mod early;

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
use early::Early;

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

/// Per time: the outputs and state changes at that time.
type Outputs<K, V> = BTreeMap<u64, Vec<Outgoing<K, V>>>;

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
            early: Early::new(policy.send_early),
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

    /// Records `error` as the sink's failure and forgets everything not
    /// committed: nothing is committed after a failure.
    fn fail(&mut self, error: Error) {
        self.status.fail("", error);
        self.buffered.clear();
        self.reports.clear();
    }
}
