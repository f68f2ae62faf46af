//! The exactly-once sink operator: buffers outputs and binding reports per
//! time on worker 0 and commits each frontier advance as one transaction.
//!
//! The operator hands each activation's input batches, then its input
//! frontier, to [`CommitSink`], a state machine with one method per event.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::{Stream, StreamVec};
use timely::ExchangeData;

use super::commit_sink::{CommitPolicy, CommitSink};
use super::progress::ProgressRecord;
use super::transactions::{Out, TransactionalWriter};
use crate::runtime::status::{load, sealed::Counted, Stats, Status};

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
    /// State changes this instance committed to the changelogs.
    pub changes: u64,
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
    pub(super) commits: AtomicU64,
    pub(super) written: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) frontier: AtomicU64,
    pub(super) aborted_early: AtomicU64,
    pub(super) changes: AtomicU64,
    /// The pipeline's metrics (a recorder's handles), set when it is built.
    pub(super) metrics: std::sync::OnceLock<super::metrics::PipelineMetrics>,
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
            changes: load(&c.changes),
        }
    }
}

impl Stats for PipelineStats {}

/// What the sink commits: an output record, or a change of a declared
/// state (the state's index among the declared ones, its encoded key and
/// value; `None`: the key was removed).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Outgoing<K, V> {
    Output(K, V),
    Change(u32, Vec<u8>, Option<Vec<u8>>),
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> Outgoing<K, V> {
    /// The record as the writer sends it.
    pub(super) fn out(&self) -> Out<'_> {
        match self {
            Outgoing::Output(key, value) => (0, key.as_ref(), Some(value.as_ref())),
            Outgoing::Change(state, key, value) => (*state as usize + 1, key, value.as_deref()),
        }
    }

    /// Its size, for the transaction's size bound.
    pub(super) fn bytes(&self) -> usize {
        let (_, key, value) = self.out();
        key.len() + value.map_or(0, <[u8]>::len)
    }
}

pub(super) fn build<'scope, K, V>(
    outputs: Stream<'scope, u64, Vec<Outgoing<K, V>>>,
    binding: StreamVec<'scope, u64, (u32, u64)>,
    writer: Option<TransactionalWriter>,
    committed: ProgressRecord,
    policy: CommitPolicy,
    status: Status<PipelineStats>,
) where
    K: ExchangeData + AsRef<[u8]>,
    V: ExchangeData + AsRef<[u8]>,
{
    status.counters().frontier.store(committed.frontier, Ordering::Relaxed);
    if let Some(metrics) = status.counters().metrics.get() {
        metrics.frontier.set(committed.frontier as f64);
    }
    let to_writer = Exchange::new(|_: &Outgoing<K, V>| 0);
    let reports_to_writer = Exchange::new(|_: &(u32, u64)| 0);
    let scope = outputs.scope();
    let peers = scope.peers();
    outputs.binary_frontier::<Vec<(u32, u64)>, timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _, _>(
        binding,
        to_writer,
        reports_to_writer,
        "ExactlyOnceSink",
        move |_capability, info| {
            let activator = scope.activator_for(info.address);
            let mut sink = CommitSink::new(writer, committed, policy, status, peers, activator);
            move |(data, data_frontier), (bindings, binding_frontier), _output| {
                data.for_each(|time, records| {
                    if let Some(&time) = time.least() {
                        sink.on_outputs(time, records);
                    }
                });
                bindings.for_each(|time, entries| {
                    if let Some(&time) = time.least() {
                        sink.on_binding_reports(time, entries);
                    }
                });
                let frontier = [data_frontier.frontier().first(), binding_frontier.frontier().first()]
                    .into_iter()
                    .flatten()
                    .min()
                    .copied();
                sink.on_frontier(frontier);
            }
        },
    );
}
