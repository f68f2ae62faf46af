//! The exactly-once sink operator: buffers outputs and binding reports per
//! time on worker 0 and commits each frontier advance as one transaction.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::{Stream, StreamVec};
use timely::ExchangeData;

use super::progress::Progress;
use super::transactions::TransactionalWriter;
use crate::connect::source::binding::{is_partition, CLEAN_END, FAILED, STOPPED_AT};
use crate::error::Error;
use crate::runtime::status::{load, sealed::Counted, Stats, Status};

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

    /// Aborts what was sent early and sends nothing early any more.
    fn stop(&mut self, writer: &TransactionalWriter, handle: &Status<PipelineStats>) -> crate::error::Result<()> {
        handle.counters().aborted_early.fetch_add(self.records(), Ordering::Relaxed);
        self.clear();
        self.stopped = true;
        writer.abort_early()
    }

    /// Whether outputs at `upto` or later were sent.
    fn beyond(&self, upto: u64) -> bool {
        self.sent.range(upto..).any(|(_, n)| *n > 0)
    }
}

/// What an exactly-once pipeline's sink counts, read through its
/// [`Status`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Transactions this instance committed.
    pub commits: u64,
    /// Output records this instance committed.
    pub written: u64,
    /// Output records at times before the resume frontier: committed by an
    /// earlier instance, so not written again.
    pub dropped: u64,
    /// The frontier of the last commit (the resume frontier before any).
    pub committed_frontier: u64,
    /// Output records sent ahead of their commit and then aborted: a commit
    /// fell due before the frontier passed them, or their transaction had
    /// been open too long for its timeout. They are committed again later; a
    /// read_uncommitted reader may see them twice.
    pub aborted_early: u64,
}

/// The counters behind [`PipelineStats`].
#[derive(Default)]
#[doc(hidden)]
pub struct PipelineCounters {
    commits: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    frontier: AtomicU64,
    aborted_early: AtomicU64,
}

impl Counted for PipelineStats {
    type Counters = PipelineCounters;
    fn read(c: &PipelineCounters) -> Self {
        PipelineStats {
            commits: load(&c.commits),
            written: load(&c.written),
            dropped: load(&c.dropped),
            committed_frontier: load(&c.frontier),
            aborted_early: load(&c.aborted_early),
        }
    }
}

impl Stats for PipelineStats {}

/// Per time: the outputs at that time.
type Outputs<K, V> = BTreeMap<u64, Vec<(K, V)>>;

/// The commit frontier: `target`, or earlier where the outputs of the
/// times before it already exceed `max_bytes` (transactions stay bounded).
fn commit_frontier<K: AsRef<[u8]>, V: AsRef<[u8]>>(outputs: &Outputs<K, V>, target: u64, max_bytes: usize) -> u64 {
    let mut bytes = 0;
    for (time, records) in outputs.range(..target) {
        bytes += records.iter().map(|(k, v)| k.as_ref().len() + v.as_ref().len()).sum::<usize>();
        if bytes >= max_bytes {
            return time + 1;
        }
    }
    target
}

pub(super) fn build<'scope, K, V>(
    outputs: Stream<'scope, u64, Vec<(K, V)>>,
    binding: StreamVec<'scope, u64, (u32, u64)>,
    writer: Option<TransactionalWriter>,
    mut committed: Progress,
    policy: CommitPolicy,
    handle: Status<PipelineStats>,
) where
    K: ExchangeData + AsRef<[u8]>,
    V: ExchangeData + AsRef<[u8]>,
{
    let status = handle.clone();
    handle.counters().frontier.store(committed.frontier, Ordering::Relaxed);
    let to_writer = Exchange::new(|_: &(K, V)| 0);
    let reports_to_writer = Exchange::new(|_: &(u32, u64)| 0);
    let mut buffered: Outputs<K, V> = BTreeMap::new();
    let mut reports: BTreeMap<u64, BTreeMap<u32, u64>> = BTreeMap::new();
    let mut latest: Option<u64> = None;
    // Workers whose source ended without a failure; those whose failed.
    let mut ended = std::collections::BTreeSet::new();
    let mut failed = std::collections::BTreeSet::new();
    // The least frontier a source told to stop reached.
    let mut stopped_at: Option<u64> = None;
    let mut last_commit = Instant::now();
    let mut early = Early { stopped: !policy.send_early, ..Default::default() };
    let scope = outputs.scope();
    let peers = scope.peers();
    outputs.binary_frontier::<Vec<(u32, u64)>, timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _, _>(
        binding,
        to_writer,
        reports_to_writer,
        "ExactlyOnceSink",
        move |_capability, info| {
            let activator = scope.activator_for(info.address);
            move |(data, data_frontier), (bindings, binding_frontier), _output| {
                let resume = committed.frontier;
                data.for_each(|time, records| {
                    let Some(&time) = time.least() else { return };
                    latest = latest.max(Some(time));
                    if time < resume {
                        if let Some(writer) = writer.as_ref() {
                            writer.crash_point("during-replay");
                        }
                        handle.counters().dropped.fetch_add(records.len() as u64, Ordering::Relaxed);
                        records.clear();
                    } else {
                        buffered.entry(time).or_default().append(records);
                    }
                });
                bindings.for_each(|time, entries| {
                    let Some(&time) = time.least() else { return };
                    if entries.iter().any(is_partition) {
                        latest = latest.max(Some(time));
                    }
                    for (partition, next) in entries.drain(..) {
                        match partition {
                            CLEAN_END => drop(ended.insert(next)),
                            FAILED => drop(failed.insert(next)),
                            STOPPED_AT => stopped_at = Some(stopped_at.map_or(next, |at: u64| at.min(next))),
                            _ if time < resume => {}
                            _ => {
                                let entry = reports.entry(time).or_default().entry(partition).or_default();
                                *entry = (*entry).max(next);
                            }
                        }
                    }
                });
                let Some(writer) = writer.as_ref() else { return };
                if let Some(worker) = failed.first().filter(|_| !status.is_failed()) {
                    // A source failed, maybe in another process: the frontier
                    // no longer says what was read. Commit nothing more.
                    let message = format!(
                        "{}: the source on worker {worker} failed (its error is reported there); nothing is \
                         committed after frontier {}",
                        writer.what(),
                        committed.frontier
                    );
                    status.fail("", Error::Dataflow(message));
                }
                if status.failed_anywhere() {
                    // A failed input never commits: its closed frontier is no end.
                    buffered.clear();
                    reports.clear();
                    handle.counters().aborted_early.fetch_add(early.records(), Ordering::Relaxed);
                    early.clear();
                    let _ = writer.abort_early();
                    return;
                }
                if !early.stopped && early.bytes < policy.max_bytes {
                    let mut unsent = Vec::new();
                    for (time, records) in &buffered {
                        let sent = early.sent.get(time).copied().unwrap_or(0);
                        if records.len() > sent {
                            unsent.push((*time, sent, records.len()));
                        }
                    }
                    if !unsent.is_empty() {
                        let records = unsent.iter().flat_map(|(time, from, to)| buffered[time][*from..*to].iter());
                        let bytes: usize = records.clone().map(|(k, v)| k.as_ref().len() + v.as_ref().len()).sum();
                        match writer.send_early(records.map(|(k, v)| (k.as_ref(), v.as_ref()))) {
                            Ok(true) => {
                                for (time, _, to) in unsent {
                                    early.sent.insert(time, to);
                                }
                                early.bytes += bytes;
                                // The broker's clock runs from the transaction's first send.
                                early.since = early.since.or(writer.begun()).or_else(|| Some(Instant::now()));
                            }
                            Ok(false) => {
                                handle.counters().aborted_early.fetch_add(early.records(), Ordering::Relaxed);
                                early.clear();
                                early.stopped = true;
                            }
                            Err(error) => {
                                status.fail("", error);
                                buffered.clear();
                                reports.clear();
                                return;
                            }
                        }
                    }
                }
                if let Some(since) = early.since {
                    let open = since.elapsed();
                    if open >= policy.max_open {
                        if let Err(error) = early.stop(writer, &handle) {
                            status.fail("", error);
                            buffered.clear();
                            reports.clear();
                            return;
                        }
                    } else {
                        activator.activate_after(policy.max_open - open);
                    }
                }
                let frontier = [data_frontier.frontier().first(), binding_frontier.frontier().first()]
                    .into_iter()
                    .flatten()
                    .min()
                    .copied();
                // A closed frontier (input ended or stopped) commits everything
                // read: the next instance continues after it, never "complete".
                // Without a clean end from every worker's source, it closed
                // because something failed (maybe in another process): no commit.
                if frontier.is_none() && ended.len() < peers {
                    let message = format!(
                        "{}: the input closed with a clean end from {} of {peers} sources (one failed or was \
                         not an exactly-once source); nothing is committed after frontier {}",
                        writer.what(),
                        ended.len(),
                        committed.frontier
                    );
                    status.fail("", Error::Dataflow(message));
                    handle.counters().aborted_early.fetch_add(early.records(), Ordering::Relaxed);
                    early.clear();
                    let _ = writer.abort_early();
                    return;
                }
                // A closed frontier commits one past the latest time read at
                // the input's end; after a stop, only what every source reached.
                let end = latest.map_or(resume, |t| t + 1).max(resume);
                let end = stopped_at.map_or(end, |at| end.min(at));
                let target = frontier.unwrap_or(end);
                if target <= committed.frontier {
                    if frontier.is_none() {
                        status.set_complete();
                    }
                    return;
                }
                let upto = commit_frontier(&buffered, target, policy.max_bytes);
                let due = frontier.is_none() || upto < target || last_commit.elapsed() >= policy.interval;
                if !due {
                    activator.activate_after(policy.interval.saturating_sub(last_commit.elapsed()));
                    return;
                }
                if early.beyond(upto) {
                    let waited = early.since.map_or(Duration::ZERO, |since| since.elapsed());
                    if frontier.is_some() && waited < policy.interval && early.bytes < policy.max_bytes {
                        activator.activate_after(policy.interval - waited);
                        return;
                    }
                    if let Err(error) = early.stop(writer, &handle) {
                        status.fail("", error);
                        buffered.clear();
                        reports.clear();
                        return;
                    }
                }
                // Commit up to `target`, in several transactions if the size
                // bound says so, all in this activation: once its inputs have
                // closed, the operator may never be scheduled again.
                while committed.frontier < target {
                    let upto = commit_frontier(&buffered, target, policy.max_bytes);
                    let mut progress = committed.clone();
                    progress.commit += 1;
                    progress.frontier = upto;
                    for entries in reports.range(..upto).map(|(_, entries)| entries) {
                        for (partition, next) in entries {
                            let entry = progress.offsets.entry(*partition).or_default();
                            *entry = (*entry).max(*next);
                        }
                    }
                    let records = || {
                        buffered
                            .range(..upto)
                            .flat_map(|(_, records)| records.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
                    };
                    let rest = buffered.range(..upto).flat_map(|(time, records)| {
                        records[early.sent.get(time).copied().unwrap_or(0)..]
                            .iter()
                            .map(|(k, v)| (k.as_ref(), v.as_ref()))
                    });
                    let committed_now = writer.commit(rest, records, &progress);
                    early.clear();
                    if let Err(error) = committed_now {
                        status.fail("", error);
                        buffered.clear();
                        reports.clear();
                        return;
                    }
                    let written: usize = buffered.range(..upto).map(|(_, records)| records.len()).sum();
                    handle.counters().written.fetch_add(written as u64, Ordering::Relaxed);
                    handle.counters().commits.fetch_add(1, Ordering::Relaxed);
                    writer.crash_point("after-commit");
                    handle.counters().frontier.store(upto, Ordering::Relaxed);
                    buffered = buffered.split_off(&upto);
                    reports = reports.split_off(&upto);
                    committed = progress;
                    last_commit = Instant::now();
                }
                if frontier.is_none() {
                    status.set_complete();
                }
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_stops_at_the_time_boundary_past_the_size_bound() {
        let outputs: Outputs<Vec<u8>, Vec<u8>> =
            (0..10u64).map(|t| (t * 2, vec![(vec![0u8; 10], vec![0u8; 90]); 3])).collect();
        // 300 bytes per time.
        assert_eq!(commit_frontier(&outputs, 20, 1 << 20), 20);
        assert_eq!(commit_frontier(&outputs, 20, 300), 1);
        assert_eq!(commit_frontier(&outputs, 20, 700), 5);
        assert_eq!(commit_frontier(&outputs, 3, 700), 3);
        assert_eq!(commit_frontier(&Outputs::<Vec<u8>, Vec<u8>>::new(), 7, 1), 7);
    }
}
