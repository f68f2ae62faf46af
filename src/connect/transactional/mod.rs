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
//! `transactions/`). A failure anywhere in the process's computation
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
mod open;
mod pipeline;
mod progress;
mod progress_topic;
mod sink;
mod state;
mod transactions;

use std::time::Duration;

pub use open::{create_state_output, open};
pub use pipeline::TransactionalPipeline;
pub use progress::{ChangelogExtent, ProgressRecord, PROGRESS_FORMAT};
pub use sink::PipelineStats;
pub use state::{changelog_topic, RestoreStats, StateChanges};

use crate::log::kafka::KafkaLog;

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

#[cfg(test)]
mod tests {
    use super::default_identity;

    #[test]
    fn default_identities_never_collide() {
        assert_ne!(default_identity("a.b", "c"), default_identity("a", "b.c"));
        assert_eq!(default_identity("lines", "counts"), "timely-kafka.5.lines.counts");
    }
}
