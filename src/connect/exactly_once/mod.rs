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
//! ([`Progress`]). Nothing else is durable: no consumer-group offsets, no
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
//! *Source* ([`crate::connect::source::kafka_source_exactly_once`]): times are made
//! monotone in offset per partition and kept on their side of the committed
//! frontier (`source/binding.rs`); a partition still below its bound offset
//! never counts as idle. Any time function is accepted: what must survive a
//! restart is only which side of `F` each record is on, and the binding
//! records exactly that. Times at or after `F` may differ from the run that
//! died; none of its outputs there were committed. Retention that deleted a
//! needed offset is an error (`auto.offset.reset=error` and a check at
//! start), never a skip.
//!
//! *State* (counts, reductions): by default every partition is read again
//! from where the pipeline's input began ([`ExactlyOnceConfig::replay_from_start`]);
//! the records below the binding rebuild the state at `F`, their outputs
//! (all before `F`) are dropped by the sink, and the computation continues
//! exactly where the commit left it. Simple and correct for any operator;
//! the cost is re-reading the input on every restart (scripts/bench_pipeline.sh
//! measures it). Stateless pipelines turn it off and seek to the binding.
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
mod metrics;
mod progress;
mod progress_topic;
mod sink;
mod transactions;

use std::collections::BTreeMap;
use std::time::Duration;

use timely::dataflow::{Stream, StreamVec};
use timely::worker::Worker;
use timely::ExchangeData;

pub use progress::{Progress, PROGRESS_FORMAT};
pub use sink::PipelineStats;

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
pub struct ExactlyOnceConfig {
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
    pub replay_from_start: bool,
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

impl ExactlyOnceConfig {
    /// A pipeline from `input` to `output` with the default names and policy.
    pub fn new(kafka: KafkaLog, input: &str, output: &str) -> Self {
        ExactlyOnceConfig {
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
}

/// A started pipeline on one worker: where to resume, and (worker 0) the
/// fenced transactional writer.
pub struct Pipeline {
    config: ExactlyOnceConfig,
    resume: Progress,
    writer: Option<TransactionalWriter>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("resume", &self.resume).field("writer", &self.writer.is_some()).finish()
    }
}

impl Pipeline {
    /// The last commit (frontier 0 and the input's start offsets if none).
    pub fn resume(&self) -> &Progress {
        &self.resume
    }

    /// Where the source resumes.
    pub fn source_resume(&self) -> SourceResume {
        SourceResume {
            frontier: self.resume.frontier,
            offsets: self.resume.offsets.clone(),
            starts: self.resume.starts.clone(),
            replay_from_start: self.config.replay_from_start,
            topic: Some(self.config.input.clone()),
        }
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
        sink::build(outputs, binding, self.writer, self.resume, policy, handle.clone());
        handle
    }
}

/// Starts the pipeline on every worker (collective: call it on each, before
/// building the dataflow): worker 0 fences earlier instances and reads the
/// last commit, and every worker learns it.
pub fn open(worker: &mut Worker, config: &ExactlyOnceConfig) -> Result<Pipeline> {
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
    Ok(Pipeline { config: config.clone(), resume, writer })
}

/// Client properties an exactly-once pipeline sets itself, and why: given
/// in the client properties, they would quietly change what it guarantees.
pub(crate) const PIPELINE_PROPERTIES: &[(&str, &str)] = &[
    ("isolation.level", "it reads its progress and input with read_committed"),
    ("auto.offset.reset", "its source fails, never skips, when the offsets it resumes from are gone"),
    ("transactional.id", "it is the pipeline's identity: set ExactlyOnceConfig::transactional_id"),
    ("transaction.timeout.ms", "set ExactlyOnceConfig::transaction_timeout: the commit budget is checked against it"),
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
fn start(config: &ExactlyOnceConfig) -> Result<(TransactionalWriter, Progress)> {
    let log = &config.kafka;
    refuse_overrides(log, &config.transactional_id)?;
    budget::check_budget(&config.transactional_id, config.transaction_timeout, config.timeout)?;
    // The topics are checked (the progress topic created on a first start)
    // while the producer fences: each costs broker round trips.
    let (writer, input) = std::thread::scope(|scope| {
        let topics = scope.spawn(|| check_topics(config));
        let writer = TransactionalWriter::start(
            log,
            &config.transactional_id,
            &config.output,
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
        None => Progress {
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
fn check_topics(config: &ExactlyOnceConfig) -> Result<TopicInfo> {
    let log = &config.kafka;
    if log.topic_info(&config.output)?.is_none() {
        return Err(Error::MissingTopic(config.output.clone()));
    }
    // librdkafka's mock cluster (the tests' broker without aborts) does not
    // answer DescribeConfigs: the check would wait out its timeout.
    let check_settings = !config.accept_broker_without_aborts;
    progress_topic::ensure_progress_topic(log, &config.progress_topic, check_settings)?;
    let input = log.topic_info(&config.input)?.ok_or_else(|| Error::MissingTopic(config.input.clone()))?;
    if check_settings && config.replay_from_start {
        refuse_compacted_input(log, &config.input)?;
    }
    Ok(input)
}

/// Refuses a last commit made on another incarnation of the input topic:
/// deleted and created again under the same name, its offsets name other
/// records, and resuming from the binding would skip or repeat them
/// silently — also when the new topic has grown past the binding, which
/// [`check_bindings_stored`] cannot see.
fn check_same_input(input: &str, progress: &Progress, now: Option<&str>) -> Result<()> {
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
             set ExactlyOnceConfig::replay_from_start = false if the computation keeps no state"
        ))),
        _ => Ok(()),
    }
}

/// Refuses a last commit bound to offsets the input no longer reaches: the
/// input topic was deleted and created again (or truncated), so reading
/// "from the binding" would wait for offsets that may never come, or read
/// other records under old numbers. Silent before: no output, exit 0.
fn check_bindings_stored(log: &KafkaLog, input: &str, progress: &Progress) -> Result<()> {
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
