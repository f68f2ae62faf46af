//! A started pipeline on one worker, and what a program builds from it:
//! the state it restores, the changes it declares, the sink it commits
//! through.
//!
//! [`open`](super::open) returns it once the last commit is known, so every
//! method here works from that commit: the offsets a source resumes from,
//! the extent of each state to restore, the frontier the sink starts at.

use serde::de::DeserializeOwned;
use serde::Serialize;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Concat;
use timely::dataflow::{Scope, Stream, StreamVec};
use timely::worker::Worker;
use timely::ExchangeData;

use super::commit_sink::CommitPolicy;
use super::progress::ProgressRecord;
use super::state::{self, RestoreStats, StateChanges};
use super::transactions::TransactionalWriter;
use super::{budget, metrics, sink, ChangelogExtent, PipelineConfig, PipelineStats};
use crate::connect::source::{BindingStream, KafkaSource, SourceConfig, SourceRecord, SourceResume, SourceStats};
use crate::error::{Error, Result};
use crate::runtime::collective::agree;
use crate::runtime::status::Status;

/// A started pipeline on one worker: where to resume, and (worker 0) the
/// fenced transactional writer.
pub struct TransactionalPipeline {
    pub(super) config: PipelineConfig,
    pub(super) resume: ProgressRecord,
    pub(super) writer: Option<TransactionalWriter>,
}

impl std::fmt::Debug for TransactionalPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalPipeline")
            .field("resume", &self.resume)
            .field("writer", &self.writer.is_some())
            .finish()
    }
}

impl TransactionalPipeline {
    /// The last commit (frontier 0 and the input's start offsets if none).
    pub fn resume(&self) -> &ProgressRecord {
        &self.resume
    }

    /// The pipeline's input as an exactly-once Kafka source: the topic
    /// its configuration names, resumed where the last commit left it.
    /// The same as `scope.kafka_source_exactly_once(config, input,
    /// self.source_resume(), logic)` without naming the input twice.
    pub fn source<'scope, D, L>(
        &self,
        scope: Scope<'scope, u64>,
        config: SourceConfig,
        logic: L,
    ) -> (Stream<'scope, u64, Vec<D>>, BindingStream<'scope>, Status<SourceStats>)
    where
        D: Clone + 'static,
        L: FnMut(&SourceRecord<'_>) -> Option<(u64, D)> + 'static,
    {
        scope.kafka_source_exactly_once(config, &self.config.input, self.source_resume(), logic)
    }

    /// Where the source resumes.
    pub fn source_resume(&self) -> SourceResume {
        SourceResume {
            frontier: self.resume.frontier,
            offsets: self.resume.offsets.clone(),
            starts: self.resume.starts.clone(),
            replay_from_start: self.config.replays(),
            topic: Some(self.config.input.clone()),
        }
    }

    /// The entries of state `name` as of the last commit that this worker
    /// restores, and what reading them took (collective: call it on every
    /// worker, before building the dataflow; one worker's failure is every
    /// worker's). Each worker reads a share of the changelog's partitions,
    /// so the program must exchange the entries by key, as it does its
    /// input, to reach the worker owning each; fed to the dataflow at time
    /// 0 (`to_stream`), they come before every input time. An error
    /// (missing, short or corrupt changelog; a timeout) is one line naming
    /// topic and partition.
    pub fn restore<K, V>(&self, worker: &mut Worker, name: &str) -> Result<(Vec<(K, V)>, RestoreStats)>
    where
        K: DeserializeOwned,
        V: DeserializeOwned,
    {
        if self.config.state_in_output.as_deref() == Some(name) {
            let message = format!(
                "exactly-once pipeline '{}': state '{name}' is kept in output topic '{}', whose records the \
                 program encodes: restore it with TransactionalPipeline::restore_with and a decoder",
                self.config.transactional_id, self.config.output
            );
            return agree(worker, Err(Error::Config(message)));
        }
        self.restore_with(worker, name, |key, value| {
            let key = state::decode::<K>(key).map_err(|e| format!("not a key: {e}"))?;
            let value = state::decode::<V>(value).map_err(|e| format!("not a value: {e}"))?;
            Ok((key, value))
        })
    }

    /// [`TransactionalPipeline::restore`] with the program's `decode` of
    /// one record (key, value) of the state's topic into an entry: for the
    /// state kept in the output ([`PipelineConfig::state_in_output`]), the
    /// inverse of how the program encodes its outputs. An `Err` (why the
    /// record is not an entry) refuses the restore, naming topic,
    /// partition and offset.
    pub fn restore_with<K, V, D>(
        &self,
        worker: &mut Worker,
        name: &str,
        decode: D,
    ) -> Result<(Vec<(K, V)>, RestoreStats)>
    where
        D: Fn(&[u8], &[u8]) -> std::result::Result<(K, V), String>,
    {
        let restored = self.extent(name).and_then(|extent| {
            let crash_at = self.config.crash_at.as_deref();
            let share = (worker.index(), worker.peers());
            let role = state::topic_role(&self.config, name);
            let timeout = self.config.timeout;
            state::restore(&self.config.kafka, name, &role, extent, share, timeout, crash_at, &decode)
        });
        agree(worker, restored)
    }

    /// The changes of state `name` the program made at each time: the new
    /// value of each key that changed, `None` for a key removed. The sink
    /// commits those at times before each commit's frontier to the state's
    /// changelog ([`TransactionalPipeline::sink_with_state`]).
    pub fn changes<'scope, K, V>(
        &self,
        name: &str,
        changes: StreamVec<'scope, u64, (K, Option<V>)>,
    ) -> Result<StateChanges<'scope>>
    where
        K: Serialize + 'static,
        V: Serialize + 'static,
    {
        self.extent(name)?;
        if self.config.state_in_output.as_deref() == Some(name) {
            return Err(Error::Config(format!(
                "exactly-once pipeline '{}': state '{name}' is kept in output topic '{}': its changes are the \
                 outputs given to the sink, not TransactionalPipeline::changes",
                self.config.transactional_id, self.config.output
            )));
        }
        let index = self.config.states.iter().position(|s| s == name).unwrap_or_default() as u32;
        let stream = changes.map(move |(key, value)| (index, state::encode(&key), value.as_ref().map(state::encode)));
        Ok(StateChanges { state: index, stream })
    }

    /// The changelog extent of declared state `name` at the last commit.
    fn extent(&self, name: &str) -> Result<&ChangelogExtent> {
        self.resume.states.get(name).filter(|_| self.config.states.iter().any(|s| s == name)).ok_or_else(|| {
            Error::Config(format!(
                "exactly-once pipeline '{}': state '{name}' is not declared (PipelineConfig::state)",
                self.config.transactional_id
            ))
        })
    }

    /// The sink: commits `outputs` with the source's `binding` stream.
    pub fn sink<'scope, K, V>(
        self,
        outputs: Stream<'scope, u64, Vec<(K, V)>>,
        binding: StreamVec<'scope, u64, (u32, u64)>,
    ) -> Status<PipelineStats>
    where
        K: ExchangeData + AsRef<[u8]>,
        V: ExchangeData + AsRef<[u8]>,
    {
        self.sink_with_state(outputs, binding, Vec::new())
    }

    /// The sink of a pipeline with declared state: commits `outputs` and
    /// the `states`' changes with the source's `binding` stream, in one
    /// transaction per commit. Each declared state needs its changes here
    /// (but the one kept in the output, whose changes are the outputs):
    /// one missing fails the sink (its state would be lost at the next
    /// restart).
    pub fn sink_with_state<'scope, K, V>(
        self,
        outputs: Stream<'scope, u64, Vec<(K, V)>>,
        binding: StreamVec<'scope, u64, (u32, u64)>,
        states: Vec<StateChanges<'scope>>,
    ) -> Status<PipelineStats>
    where
        K: ExchangeData + AsRef<[u8]>,
        V: ExchangeData + AsRef<[u8]>,
    {
        let in_output = self.config.state_in_output.as_deref();
        let missing = (0..self.config.states.len() as u32).find(|index| {
            in_output != Some(self.config.states[*index as usize].as_str()) && states.iter().all(|s| s.state != *index)
        });
        let mut outgoing = outputs.map(|(key, value)| sink::Outgoing::Output(key, value));
        for changes in states {
            outgoing =
                outgoing.concat(changes.stream.map(|(state, key, value)| sink::Outgoing::Change(state, key, value)));
        }
        let handle = Status::<PipelineStats>::default();
        let _ = handle.counters().metrics.set(metrics::PipelineMetrics::new(&self.config.input, &self.config.output));
        let policy = CommitPolicy {
            interval: self.config.commit_interval,
            max_bytes: self.config.max_transaction_bytes,
            // Early records are aborted when a commit cannot take them: a
            // broker that shows aborted records would show them.
            send_early: !self.config.accept_broker_without_aborts,
            max_open: budget::max_open(self.config.transaction_timeout, self.config.timeout),
        };
        if let Some(index) = missing {
            let message = format!(
                "exactly-once pipeline '{}': state '{}' is declared but its changes were not given to the sink \
                 (TransactionalPipeline::changes); nothing is committed",
                self.config.transactional_id, self.config.states[index as usize]
            );
            handle.fail("", Error::Config(message));
        }
        sink::build(outgoing, binding, self.writer, self.resume, policy, handle.clone());
        handle
    }
}
