//! Exactly-once pipelines: a Kafka topic in, a timely computation, a Kafka
//! topic out; killed at any moment and started again, the output topic holds
//! (to read_committed readers) exactly the output of one uninterrupted run.
//!
//! # Design
//!
//! *One commit point.* The output topic is written only in Kafka
//! transactions, by one transactional producer on worker 0 (all outputs are
//! exchanged to it). A transaction holds the outputs at the times a frontier
//! advance completed and, written last, a *progress record* in a
//! one-partition progress topic: the new frontier `F`, the *binding* (per
//! source partition, the offset `o` such that every record below `o` got a
//! time before `F` and every later one gets `F` or later), where each
//! partition's input starts, the commit number and the format version
//! ([`ProgressRecord`]). Nothing else is durable: no consumer-group offsets, no
//! local state. Commits happen when the frontier advanced and the commit
//! interval passed, or earlier at a time boundary once the completed outputs
//! exceed the size bound.
//!
//! *Restart* ([`open`], collective): worker 0 (1) checks
//! `transaction.timeout.ms` against the broker's maximum; (2) calls
//! `init_transactions` with the pipeline's transactional id, which fences
//! every earlier instance and aborts its open transaction. The identity is
//! the same whatever the worker count (one writer, named by the pipeline,
//! not by a worker index), so a resized restart fences too; (3) writes one
//! probe record in a transaction it aborts; (4) reads the progress topic
//! completely: the high watermark with read_uncommitted, then every
//! committed record up to it with read_committed — a timeout is an error.
//! If the aborted probe was visible, the broker has no abort semantics
//! (librdkafka's mock cluster) and exactly-once refuses to start in one
//! line; a broker without transactions (tansu) already fails at (2). Every
//! worker then learns the last commit: the sources seek by it, the sink
//! drops outputs at times before its frontier.
//!
//! *Source* ([`crate::connect::source::KafkaSource::kafka_source_exactly_once`]): times are made
//! monotone in offset per partition and kept on their side of the committed
//! frontier (`source/binding.rs`); a partition still below its bound offset
//! never counts as idle. Any time function is accepted: what must survive a
//! restart is only which side of `F` each record is on, and the binding
//! records exactly that. Times at or after `F` may differ from the run that
//! died; none of its outputs there were committed. Retention that deleted a
//! needed offset is an error (`auto.offset.reset=error` and a check at
//! start), never a skip.
//!
//! *State* (counts, reductions): a pipeline that declares its keyed state
//! ([`PipelineConfig::state`]) writes its changes to a compacted
//! changelog topic in the same transaction as the outputs and the progress
//! record, restores it at start to exactly the committed frontier, and its
//! sources seek to the binding (`state/mod.rs`): a restart reads the state, not the input's history.
//! A state whose changes are the outputs can be kept in the (compacted)
//! output topic itself ([`PipelineConfig::state_in_output`]): nothing is
//! written twice, and the progress record bounds the output like a changelog.
//! Without declared state, every partition is read again from where the
//! pipeline's input began ([`PipelineConfig::replay_from_start`]);
//! the records below the binding rebuild the state at `F`, their outputs
//! (all before `F`) are dropped by the sink, and the computation continues
//! exactly where the commit left it. The cost is re-reading the input on
//! every restart (scripts/bench_pipeline.sh measures both). Stateless
//! pipelines turn it off and seek to the binding.
//!
//! *Failures*: a commit error is handled by librdkafka's class (see
//! `transactions.rs`). A failure anywhere in the process's computation
//! stops the sink before its next commit. A frontier that closes commits
//! only if every worker's source reported a clean end (its input's end, or
//! told to stop): a source failing in another process, which this one learns
//! of only when the computation ends, closes its frontier without one, so a
//! failure-closed frontier is never committed. A clean close commits
//! everything read, with the frontier one past the latest time seen and the
//! binding of what was read — never as "complete": a later start continues
//! after it. (Commits before a failure are sound whatever failed in a
//! source: the binding records exactly which records each commit covers.)
//!
//! *Zombies*: an instance frozen (or partitioned away) while a newer one
//! started is fenced by the newer one's `init_transactions`; its next
//! transactional call fails with a fatal "fenced" error and it stops. An
//! instance frozen *before* its own `init_transactions` fences the newer
//! one when it wakes, which then stops instead: either way one writer wins,
//! and it read the progress after fencing the other.

mod budget;
mod commit_sink;
mod delivered;
mod metrics;
mod progress;
mod progress_topic;
mod sink;
mod state;
mod transactions;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Concat;
use timely::dataflow::{Stream, StreamVec};
use timely::worker::Worker;
use timely::ExchangeData;

pub use progress::{ChangelogExtent, ProgressRecord, PROGRESS_FORMAT};
pub use sink::PipelineStats;
pub use state::{changelog_topic, RestoreStats, StateChanges};

use crate::connect::source::SourceResume;
use crate::error::{Error, Result};
use crate::log::kafka::KafkaLog;
use crate::log::{LogBackend, TopicInfo};
use crate::runtime::collective::{agree, all_gather};
use crate::runtime::status::Status;
use commit_sink::CommitPolicy;
use progress::read_progress;
use transactions::TransactionalWriter;

/// The default identity of the pipeline from `input` to `output`:
/// `timely-kafka.<length of input>.<input>.<output>`. The length makes it
/// injective: topic names may hold dots, and without it the pipelines
/// `a.b → c` and `a → b.c` shared one transactional id and fenced each
/// other.
pub fn default_identity(input: &str, output: &str) -> String {
    format!("timely-kafka.{}.{input}.{output}", input.len())
}

/// An exactly-once pipeline: its topics, its identity and its commit policy.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Brokers and client properties.
    pub kafka: KafkaLog,
    /// The source topic.
    pub input: String,
    /// The output topic (must exist).
    pub output: String,
    /// The one-partition progress topic (created if missing). Default
    /// `<output>.progress`.
    pub progress_topic: String,
    /// The pipeline's identity: the transactional id of its one writer.
    /// Every instance of the pipeline must use the same. Default
    /// [`default_identity`].
    pub transactional_id: String,
    /// The shortest time between commits.
    pub commit_interval: Duration,
    /// A transaction's outputs, in bytes, above which it commits at the
    /// earliest time boundary past it.
    pub max_transaction_bytes: usize,
    /// `transaction.timeout.ms` (must not exceed the broker's maximum). A
    /// transaction holding outputs sent early is ended within
    /// `(transaction_timeout - timeout) / 2` of its start.
    pub transaction_timeout: Duration,
    /// Bound on each start-up step and each commit; must be below
    /// `transaction_timeout` (refused at start otherwise).
    pub timeout: Duration,
    /// Read each source partition from its start on every run, so stateful
    /// operators rebuild their state (default); `false` seeks to the binding.
    /// [`PipelineConfig::state`] turns it off: the state is restored.
    pub replay_from_start: bool,
    /// The declared keyed states, by name (see [`PipelineConfig::state`]).
    pub states: Vec<String>,
    /// The declared state kept in the output topic itself, if any (see
    /// [`PipelineConfig::state_in_output`]); also in `states`.
    pub state_in_output: Option<String>,
    /// Partitions of a changelog topic created on a state's first use
    /// (default: the input's partition count). Fixed once it holds state.
    pub state_partitions: Option<u32>,
    /// Tests only: accept a broker whose read_committed readers see aborted
    /// records (librdkafka's mock cluster). Its output is exact only while
    /// nothing is aborted.
    #[doc(hidden)]
    pub accept_broker_without_aborts: bool,
    /// Start over when no commit of this pipeline is found although the
    /// progress topic lost records or the output holds committed records
    /// (refused otherwise: every output would be written again).
    pub fresh: bool,
    /// Tests only: abort the process at this named point, to prove a crash
    /// there is safe: `after-fence`, `after-probe` (start-up, before the
    /// progress read), `during-replay` (the first output dropped below the
    /// resume frontier), `before-commit` (outputs and progress record
    /// delivered, `commit_transaction` not called), `after-commit`. The
    /// examples take it from `TIMELY_KAFKA_CRASH_AT`.
    #[doc(hidden)]
    pub crash_at: Option<String>,
}

impl PipelineConfig {
    /// A pipeline from `input` to `output` with the default names and policy.
    pub fn new(kafka: KafkaLog, input: &str, output: &str) -> Self {
        PipelineConfig {
            kafka,
            input: input.to_string(),
            output: output.to_string(),
            progress_topic: format!("{output}.progress"),
            transactional_id: default_identity(input, output),
            commit_interval: Duration::from_millis(500),
            max_transaction_bytes: 16 << 20,
            transaction_timeout: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            replay_from_start: true,
            states: Vec::new(),
            state_in_output: None,
            state_partitions: None,
            accept_broker_without_aborts: false,
            fresh: false,
            crash_at: None,
        }
    }

    /// Sets the commit interval.
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// Whether the sources read from the input's start: only without
    /// declared state (a restored state plus a replay would count the
    /// records below the binding twice).
    fn replays(&self) -> bool {
        self.replay_from_start && self.states.is_empty()
    }

    /// Declares a keyed state `name`: its changes are committed to the
    /// compacted changelog topic `<output>.state.<name>` with the outputs
    /// ([`TransactionalPipeline::changes`]), a start restores it as of the last commit
    /// ([`TransactionalPipeline::restore`]), and the sources read from the binding
    /// instead of the input's start.
    pub fn state(mut self, name: &str) -> Self {
        self.states.push(name.to_string());
        self.replay_from_start = false;
        self
    }

    /// Declares a keyed state `name` whose changes *are* the outputs: its
    /// changelog is the output topic itself (Kafka Streams' source-topic
    /// changelog optimization), so nothing is written twice. Every output
    /// record must be the state's new value for its key (no tombstones, no
    /// other records), the output topic must be compacted with no time or
    /// size retention (checked at start), and a start restores the state
    /// by reading the output's committed records with the program's decoder
    /// ([`TransactionalPipeline::restore_with`]). The outputs given to the
    /// sink are the state's changes: [`TransactionalPipeline::changes`] is
    /// not called for it. At most one state per pipeline (a later call
    /// replaces the name).
    pub fn state_in_output(mut self, name: &str) -> Self {
        if let Some(previous) = self.state_in_output.take() {
            self.states.retain(|s| *s != previous);
        }
        self.states.push(name.to_string());
        self.state_in_output = Some(name.to_string());
        self.replay_from_start = false;
        self
    }

    /// The topic holding state `name`'s changes: the output for the state
    /// kept in it, `<output>.state.<name>` for the others.
    pub fn state_topic(&self, name: &str) -> String {
        if self.state_in_output.as_deref() == Some(name) {
            self.output.clone()
        } else {
            changelog_topic(&self.output, name)
        }
    }
}

/// A started pipeline on one worker: where to resume, and (worker 0) the
/// fenced transactional writer.
pub struct TransactionalPipeline {
    config: PipelineConfig,
    resume: ProgressRecord,
    writer: Option<TransactionalWriter>,
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

/// Starts the pipeline on every worker (collective: call it on each, before
/// building the dataflow): worker 0 fences earlier instances and reads the
/// last commit, and every worker learns it.
pub fn open(worker: &mut Worker, config: &PipelineConfig) -> Result<TransactionalPipeline> {
    let started =
        if worker.index() == 0 { start(config).map(|(w, p)| (Some(w), p)) } else { Ok((None, Default::default())) };
    let shared = started.as_ref().map(|(_, progress)| progress.clone()).map_err(|e| e.to_string());
    let gathered = all_gather(worker, shared);
    let (writer, _) = agree(worker, started)?;
    let resume = match gathered.into_iter().next() {
        Some(Ok(progress)) => progress,
        Some(Err(message)) => return Err(Error::Dataflow(message)),
        None => return Err(Error::Dataflow("worker 0 did not report the last commit".into())),
    };
    Ok(TransactionalPipeline { config: config.clone(), resume, writer })
}

/// Creates `topic` with `partitions` partitions, compacted with no time or
/// size retention, unless it exists: the output topic of a pipeline that
/// keeps a state in it ([`PipelineConfig::state_in_output`]). An existing
/// topic is left as it is; [`open`] refuses it if its settings would
/// delete records.
pub fn create_state_output(log: &KafkaLog, topic: &str, partitions: u32) -> Result<()> {
    if log.topic_info(topic)?.is_some() {
        return Ok(());
    }
    match log.create_with_configs(topic, partitions, progress_topic::PROGRESS_TOPIC_CONFIGS) {
        // Created meanwhile by another process: checked at open.
        Err(_) if log.topic_info(topic)?.is_some() => Ok(()),
        created => created,
    }
}

/// Client properties an exactly-once pipeline sets itself, and why: given
/// in the client properties, they would quietly change what it guarantees.
pub(crate) const PIPELINE_PROPERTIES: &[(&str, &str)] = &[
    ("isolation.level", "it reads its progress and input with read_committed"),
    ("auto.offset.reset", "its source fails, never skips, when the offsets it resumes from are gone"),
    ("transactional.id", "it is the pipeline's identity: set PipelineConfig::transactional_id"),
    ("transaction.timeout.ms", "set PipelineConfig::transaction_timeout: the commit budget is checked against it"),
    ("enable.idempotence", "transactions need it"),
];

/// Refuses client properties the pipeline must set itself, naming the first.
pub(crate) fn refuse_overrides(log: &KafkaLog, id: &str) -> Result<()> {
    match PIPELINE_PROPERTIES.iter().find(|(key, _)| log.property(key).is_some()) {
        Some((key, why)) => Err(Error::Config(format!(
            "exactly-once pipeline '{id}': client property '{key}' is set by the pipeline ({why}); remove it"
        ))),
        None => Ok(()),
    }
}

/// Worker 0's part of [`open`].
fn start(config: &PipelineConfig) -> Result<(TransactionalWriter, ProgressRecord)> {
    let log = &config.kafka;
    refuse_overrides(log, &config.transactional_id)?;
    if !config.states.is_empty() {
        state::refuse_random_partitioner(log, &config.transactional_id)?;
    }
    budget::check_budget(&config.transactional_id, config.transaction_timeout, config.timeout)?;
    // The topics are checked (the progress topic created on a first start)
    // while the producer fences: each costs broker round trips.
    let (writer, input) = std::thread::scope(|scope| {
        let topics = scope.spawn(|| check_topics(config));
        let changelogs: Vec<String> = config.states.iter().map(|name| config.state_topic(name)).collect();
        let writer = TransactionalWriter::start(
            log,
            &config.transactional_id,
            &config.output,
            &changelogs,
            &config.progress_topic,
            config.transaction_timeout,
            config.timeout,
        );
        let input = topics.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        Ok::<_, Error>((writer?.crash_at(config.crash_at.clone()), input))
    })?;
    writer.crash_point("after-fence");
    writer.probe()?;
    writer.crash_point("after-probe");
    let (last, probe_visible) = read_progress(log, &config.progress_topic, &config.transactional_id, config.timeout)?;
    if probe_visible && !config.accept_broker_without_aborts {
        return Err(Error::Config(format!(
            "exactly-once sink refused: the brokers show aborted transactions to read_committed readers \
             (progress topic '{}'; librdkafka's mock cluster?): exactly-once needs a broker with transactions, \
             such as Apache Kafka",
            config.progress_topic
        )));
    }
    if last.is_none() && !config.fresh {
        progress_topic::refuse_start_over(log, &config.progress_topic, &config.output, config.timeout)?;
    }
    let mut progress = match last {
        Some(progress) if progress.format != PROGRESS_FORMAT => {
            return Err(Error::Config(format!(
                "progress topic '{}': format {} written by a newer version (this one reads {PROGRESS_FORMAT})",
                config.progress_topic, progress.format
            )))
        }
        Some(progress) if progress.input != config.input => {
            return Err(Error::Config(format!(
                "progress topic '{}' belongs to a pipeline reading topic '{}', not '{}'",
                config.progress_topic, progress.input, config.input
            )))
        }
        Some(progress) => progress,
        None => ProgressRecord {
            format: PROGRESS_FORMAT,
            writer: config.transactional_id.clone(),
            input: config.input.clone(),
            ..Default::default()
        },
    };
    // Asked only now: librdkafka's mock cluster (refused above unless a
    // test accepts it) never answers DescribeTopics.
    let input_id = if config.accept_broker_without_aborts { None } else { log.topic_id(&config.input)? };
    check_same_input(&config.input, &progress, input_id.as_deref())?;
    if input_id.is_some() {
        progress.input_id = input_id;
    }
    check_bindings_stored(log, &config.input, &progress)?;
    let partitions = config.state_partitions.unwrap_or(input.partitions).max(1);
    let check = !config.accept_broker_without_aborts;
    state::check_changelogs(log, config, partitions, check, &mut progress)?;
    // Partitions the last commit does not know (a first start, or added
    // since) begin at their first retained offset.
    let missing: Vec<u32> = (0..input.partitions).filter(|p| !progress.starts.contains_key(p)).collect();
    if !missing.is_empty() {
        let starts = first_offsets(log, &config.input, &missing)?;
        for (partition, start) in starts {
            progress.starts.insert(partition, start);
            progress.offsets.entry(partition).or_insert(start);
        }
    }
    Ok((writer, progress))
}

/// The input topic, after checking that the output topic exists and
/// creating the progress topic if it does not.
fn check_topics(config: &PipelineConfig) -> Result<TopicInfo> {
    let log = &config.kafka;
    if log.topic_info(&config.output)?.is_none() {
        return Err(Error::MissingTopic(config.output.clone()));
    }
    // librdkafka's mock cluster (the tests' broker without aborts) does not
    // answer DescribeConfigs: the check would wait out its timeout.
    let check_settings = !config.accept_broker_without_aborts;
    progress_topic::ensure_progress_topic(log, &config.progress_topic, check_settings)?;
    let input = log.topic_info(&config.input)?.ok_or_else(|| Error::MissingTopic(config.input.clone()))?;
    if check_settings && config.replays() {
        refuse_compacted_input(log, &config.input)?;
    }
    Ok(input)
}

/// Refuses a last commit made on another incarnation of the input topic:
/// deleted and created again under the same name, its offsets name other
/// records, and resuming from the binding would skip or repeat them
/// silently — also when the new topic has grown past the binding, which
/// [`check_bindings_stored`] cannot see.
fn check_same_input(input: &str, progress: &ProgressRecord, now: Option<&str>) -> Result<()> {
    match (progress.input_id.as_deref(), now) {
        (Some(then), Some(now)) if then != now => Err(Error::Config(format!(
            "topic '{input}' was deleted and created again: its topic id is {now}, the last commit ({}) read \
             topic id {then}; its offsets name other records now, so refusing to continue exactly once (start a \
             new pipeline: new output and progress topics)",
            progress.commit
        ))),
        _ => Ok(()),
    }
}

/// Refuses a compacted input when state is rebuilt by replaying it from its
/// start: compaction removed the older records of each key, so the rebuilt
/// state would not be the one committed (counts too low, silently).
fn refuse_compacted_input(log: &KafkaLog, input: &str) -> Result<()> {
    let Ok(Some(configs)) = log.topic_configs(input) else { return Ok(()) };
    match configs.iter().find(|(key, _)| key == "cleanup.policy") {
        Some((_, policy)) if policy.contains("compact") => Err(Error::Config(format!(
            "input topic '{input}' is compacted (cleanup.policy={policy}): replaying it from its start would \
             rebuild the state without the records compaction removed; use an input that is not compacted, or \
             set PipelineConfig::replay_from_start = false if the computation keeps no state"
        ))),
        _ => Ok(()),
    }
}

/// Refuses a last commit bound to offsets the input no longer reaches: the
/// input topic was deleted and created again (or truncated), so reading
/// "from the binding" would wait for offsets that may never come, or read
/// other records under old numbers. Silent before: no output, exit 0.
fn check_bindings_stored(log: &KafkaLog, input: &str, progress: &ProgressRecord) -> Result<()> {
    for (&partition, &bound) in &progress.offsets {
        let (_, end) = log.watermarks(input, partition)?;
        if bound > end {
            return Err(Error::Config(format!(
                "topic '{input}' partition {partition}: the last commit ({}) read to offset {bound} but the \
                 partition ends at {end}: the input topic was deleted and created again, or truncated; refusing \
                 to continue exactly once (start a new pipeline: new output and progress topics)",
                progress.commit
            )));
        }
    }
    Ok(())
}

/// The first retained offset of each of `partitions` of `topic`.
fn first_offsets(log: &KafkaLog, topic: &str, partitions: &[u32]) -> Result<BTreeMap<u32, u64>> {
    partitions.iter().map(|&partition| Ok((partition, log.watermarks(topic, partition)?.0))).collect()
}

#[cfg(test)]
mod tests {
    use super::default_identity;

    #[test]
    fn default_identities_never_collide() {
        assert_ne!(default_identity("a.b", "c"), default_identity("a", "b.c"));
        assert_eq!(default_identity("lines", "counts"), "timely-kafka.5.lines.counts");
    }
}
