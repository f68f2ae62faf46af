//! The transactional producer: start (check, fence, probe) and commit, with
//! each of librdkafka's transactional error classes handled.
//!
//! - *retriable* (a timeout, a coordinator moving): the same call again,
//!   until the commit timeout;
//! - *abortable* (`txn_requires_abort`: a record that failed delivery, a
//!   partition the transaction could not add): abort, then the whole
//!   transaction again from the last commit — its outputs are still
//!   buffered, nothing of them is visible — a bounded number of times;
//! - *fatal* (fenced by a newer instance, an invalid configuration) or
//!   unclassified: the sink stops with one line naming the writer.
//!
//! librdkafka reports both "a newer instance fenced this one" and "the
//! broker aborted this transaction for outliving `transaction.timeout.ms`"
//! as one code (`__FENCED`: the coordinator bumps the epoch either way). The
//! writer knows when its transaction began, so its message tells the two
//! apart by the transaction's age. A commit may take `timeout`, so the
//! configuration must keep `timeout` below `transaction.timeout.ms`, and a
//! transaction holding early outputs is ended within `budget::max_open`.
//!
//! At start: `transaction.timeout.ms` is checked against the broker's
//! `transaction.max.timeout.ms` (above it, `init_transactions` fails
//! fatally); `init_transactions` fences every earlier instance with the same
//! transactional id and aborts its open transaction; then one probe record
//! is written in a transaction that is aborted, so the progress read can
//! tell a broker whose read_committed readers see aborted records
//! (librdkafka's mock cluster) from one that implements transactions.

use std::cell::Cell;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::budget::{check_transaction_timeout, max_open};
use super::delivered::{wait_reported, Delivered};
use super::progress::{probe_key, ProgressRecord};
use crate::error::{Error, Result};
use crate::log::kafka::polled::PolledProducer;
use crate::log::kafka::{KafkaLog, CONSUMER_ONLY};

/// How often an abortable failure restarts the transaction before the sink gives up.
const ATTEMPTS: u32 = 5;

/// What went wrong in a transaction, by librdkafka's class.
enum Failure {
    Abortable(String),
    Fatal(String),
}

impl Failure {
    fn into_reason(self) -> String {
        match self {
            Failure::Abortable(reason) | Failure::Fatal(reason) => reason,
        }
    }
}

fn classify(error: &KafkaError) -> Option<&rdkafka::error::RDKafkaError> {
    match error {
        KafkaError::Transaction(inner) => Some(inner),
        _ => None,
    }
}

/// A record a transaction holds: the topic (0: the output, `i > 0`: the
/// changelog of the `i`-th declared state), key, value (`None`: a
/// tombstone, which deletes the key from a compacted changelog).
pub(super) type Out<'a> = (usize, &'a [u8], Option<&'a [u8]>);

/// The one transactional writer of a pipeline.
pub(super) struct TransactionalWriter {
    producer: PolledProducer<Delivered>,
    id: String,
    output: String,
    /// The output, then the changelog of each declared state.
    topics: Vec<String>,
    /// Changelog records sent (their delivery reports are awaited before
    /// a commit's progress record, which stores where they end).
    changelog_sent: Cell<u64>,
    /// Whether the output is a state's changelog too
    /// ([`PipelineConfig::state_in_output`](super::PipelineConfig::state_in_output)):
    /// its records then count as changelog records.
    output_watched: bool,
    progress_topic: String,
    timeout: Duration,
    transaction_timeout: Duration,
    /// A transaction [`TransactionalWriter::send_early`] began, not ended yet.
    open: Cell<bool>,
    /// When the current transaction began, if one is open.
    begun: Cell<Option<Instant>>,
    /// [`PipelineConfig::crash_at`](super::PipelineConfig::crash_at).
    crash_at: Option<String>,
}

/// Aborts the process at `point` if the program asked for it
/// ([`PipelineConfig::crash_at`](super::PipelineConfig::crash_at)).
pub(super) fn crash_point(crash_at: Option<&str>, point: &str) {
    if crash_at == Some(point) {
        eprintln!("timely-kafka: crash point '{point}' reached: aborting (PipelineConfig::crash_at)");
        std::process::abort();
    }
}

impl TransactionalWriter {
    /// Creates the producer, checks the transaction timeout and fences
    /// earlier instances.
    pub(super) fn start(
        log: &KafkaLog,
        id: &str,
        output: &str,
        changelogs: &[String],
        progress_topic: &str,
        transaction_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self> {
        let what = format!("exactly-once sink (transactional.id '{id}')");
        // The check costs an admin client and two round trips: it runs
        // while the producer fences; a timeout it refuses fails both.
        std::thread::scope(|scope| {
            let checked = scope.spawn(|| check_transaction_timeout(log, transaction_timeout, timeout, &what));
            let started = Self::fence(log, id, output, changelogs, progress_topic, transaction_timeout, timeout, &what);
            checked.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            started
        })
    }

    /// Creates the producer and fences earlier instances (`init_transactions`).
    #[allow(clippy::too_many_arguments)]
    fn fence(
        log: &KafkaLog,
        id: &str,
        output: &str,
        changelogs: &[String],
        progress_topic: &str,
        transaction_timeout: Duration,
        timeout: Duration,
        what: &str,
    ) -> Result<Self> {
        let transaction_ms = transaction_timeout.as_millis().to_string();
        // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
        let message_ms = transaction_ms.clone();
        let defaults = [
            ("transactional.id", id),
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("transaction.timeout.ms", transaction_ms.as_str()),
            ("message.timeout.ms", message_ms.as_str()),
            // With sparse connections, init_transactions waited for a
            // broker connection and asked again after librdkafka's 500 ms
            // step: a start took 0.5 s longer (Apache Kafka, one node).
            ("enable.sparse.connections", "false"),
            ("queue.buffering.max.kbytes", "65536"),
            ("allow.auto.create.topics", "false"),
        ];
        let producer: BaseProducer<Delivered> = log
            .config(&defaults, CONSUMER_ONLY)
            .create_with_context(Delivered::new(changelogs.to_vec()))
            .map_err(|e| Error::kafka_from(format!("{what}: cannot create producer"), &e))?;
        let producer = PolledProducer::new(producer, "timely-kafka transactions")
            .map_err(|e| Error::kafka_from(format!("{what}: cannot start the producer's polling thread"), &e))?;
        producer.init_transactions(timeout).map_err(|e| {
            Error::kafka(format!(
                "{what}: init_transactions failed: {e} (exactly-once needs a broker with transactions, such as \
                 Apache Kafka)"
            ))
        })?;
        let writer = TransactionalWriter {
            producer,
            id: id.to_string(),
            output: output.to_string(),
            topics: std::iter::once(output.to_string()).chain(changelogs.iter().cloned()).collect(),
            changelog_sent: Cell::new(0),
            output_watched: changelogs.iter().any(|topic| topic == output),
            progress_topic: progress_topic.to_string(),
            timeout,
            transaction_timeout,
            open: Cell::new(false),
            begun: Cell::new(None),
            crash_at: None,
        };
        Ok(writer)
    }

    /// Writes one record to the progress topic in a transaction that is
    /// aborted (see the module doc).
    pub(super) fn probe(&self) -> Result<()> {
        self.try_probe().map_err(|e| {
            Error::kafka(format!(
                "exactly-once sink (transactional.id '{}'): aborted probe transaction failed: {e}",
                self.id
            ))
        })
    }

    fn try_probe(&self) -> std::result::Result<(), String> {
        self.begin().map_err(Failure::into_reason)?;
        let key = probe_key(&self.id);
        let record = BaseRecord::<str, str>::to(&self.progress_topic).partition(0).key(&key).payload("probe");
        self.producer.send(record).map_err(|(e, _)| e.to_string())?;
        if !self.producer.wait_delivered(Instant::now() + self.timeout) {
            return Err(format!("the probe record was not delivered within {:?}", self.timeout));
        }
        self.abort().map_err(Failure::into_reason)
    }

    /// Sets the crash point the program asked for (tests).
    pub(super) fn crash_at(mut self, point: Option<String>) -> Self {
        self.crash_at = point;
        self
    }

    /// Aborts the process at `point` if it is the crash point asked for.
    pub(super) fn crash_point(&self, point: &str) {
        crash_point(self.crash_at.as_deref(), point);
    }

    pub(super) fn what(&self) -> String {
        format!("exactly-once sink to topic '{}' (transactional.id '{}')", self.output, self.id)
    }

    /// Sends outputs ahead of their commit, into the open transaction
    /// (begun if none is), so that a commit has less left to send. The
    /// caller must commit them with the next commit or abort them
    /// ([`TransactionalWriter::abort_early`]). `Ok(false)`: an abortable
    /// failure; the transaction was aborted, nothing sent early is left.
    /// A full local queue is waited for at most until the transaction has
    /// been open for [`max_open`].
    pub(super) fn send_early<'a>(&self, mut outputs: impl Iterator<Item = Out<'a>>) -> Result<bool> {
        let sent = (|| {
            if !self.open.get() {
                self.begin()?;
                self.open.set(true);
            }
            let begun = self.begun.get().unwrap_or_else(Instant::now);
            let deadline = begun + max_open(self.transaction_timeout, self.timeout);
            outputs.try_for_each(|record| self.send_out(record, deadline))
        })();
        match sent {
            Ok(()) => Ok(true),
            Err(Failure::Fatal(reason)) => Err(Error::kafka(format!("{}: {reason}", self.what()))),
            Err(Failure::Abortable(_)) => self.abort_early().map(|()| false),
        }
    }

    /// When the open transaction began, if one is open.
    pub(super) fn begun(&self) -> Option<Instant> {
        self.begun.get()
    }

    fn begin(&self) -> std::result::Result<(), Failure> {
        self.producer.begin_transaction().map_err(|e| self.failure(&e))?;
        self.begun.set(Some(Instant::now()));
        Ok(())
    }

    /// Aborts what [`TransactionalWriter::send_early`] sent, if anything.
    pub(super) fn abort_early(&self) -> Result<()> {
        if self.open.replace(false) {
            if let Err(Failure::Fatal(reason) | Failure::Abortable(reason)) = self.abort() {
                return Err(Error::kafka(format!("{}: abort of the records sent early failed: {reason}", self.what())));
            }
            super::metrics::aborted(&self.output);
        }
        Ok(())
    }

    /// Commits `outputs` and, last, `progress`, in one transaction; an
    /// abortable failure restarts it (a bounded number of times). If
    /// [`TransactionalWriter::send_early`] opened the transaction, `rest`
    /// (the outputs it did not send) is sent to finish it first; `outputs`
    /// must then include what was sent early (a restart sends it again).
    /// Returns the progress record committed: `progress` with its
    /// changelogs' ends.
    pub(super) fn commit<'a, I, R>(
        &self,
        rest: R,
        outputs: impl Fn() -> I,
        progress: &ProgressRecord,
    ) -> Result<ProgressRecord>
    where
        I: Iterator<Item = Out<'a>>,
        R: Iterator<Item = Out<'a>>,
    {
        let what = self.what();
        let mut last = String::new();
        if self.open.replace(false) {
            match self.try_commit(false, rest, progress) {
                Ok(committed) => return Ok(committed),
                Err(Failure::Fatal(reason)) => return Err(Error::kafka(format!("{what}: {reason}"))),
                Err(Failure::Abortable(reason)) => {
                    last = reason;
                    if let Err(Failure::Fatal(reason) | Failure::Abortable(reason)) = self.abort() {
                        return Err(Error::kafka(format!("{what}: abort after '{last}' failed: {reason}")));
                    }
                    super::metrics::aborted(&self.output);
                }
            }
        }
        for _ in 0..ATTEMPTS {
            match self.try_commit(true, outputs(), progress) {
                Ok(committed) => return Ok(committed),
                Err(Failure::Fatal(reason)) => return Err(Error::kafka(format!("{what}: {reason}"))),
                Err(Failure::Abortable(reason)) => {
                    last = reason;
                    if let Err(Failure::Fatal(reason) | Failure::Abortable(reason)) = self.abort() {
                        return Err(Error::kafka(format!("{what}: abort after '{last}' failed: {reason}")));
                    }
                    super::metrics::aborted(&self.output);
                }
            }
        }
        Err(Error::kafka(format!("{what}: commit {} aborted {ATTEMPTS} times; last: {last}", progress.commit)))
    }

    /// `begin`: false when the transaction is open already (records sent early).
    fn try_commit<'a>(
        &self,
        begin: bool,
        outputs: impl Iterator<Item = Out<'a>>,
        progress: &ProgressRecord,
    ) -> std::result::Result<ProgressRecord, Failure> {
        if begin {
            self.begin()?;
        }
        let deadline = Instant::now() + self.timeout;
        for record in outputs {
            self.send_out(record, deadline)?;
        }
        let progress = self.with_changelog_ends(progress, deadline)?;
        let payload = serde_json::to_vec(&progress).map_err(|e| Failure::Fatal(e.to_string()))?;
        let key = self.id.as_bytes();
        self.send(BaseRecord::to(&self.progress_topic).partition(0).key(key).payload(&payload[..]), deadline)?;
        // Delivered first: commit_transaction's own flush waits in steps
        // of up to 100 ms (see `log/kafka/polled.rs`).
        self.producer.wait_delivered(deadline);
        self.crash_point("before-commit");
        // A commit that timed out is resumed by calling it again, until the
        // transaction is as old as transaction.timeout.ms (the broker then
        // aborts it, and the failure says so): a broker back from an outage
        // may take longer than `timeout` (librdkafka's reconnect backoff
        // grows to 10 s), and an abort would throw the delivered records away.
        let last_chance = self.begun.get().map_or(deadline, |begun| (begun + self.transaction_timeout).max(deadline));
        loop {
            let remaining = last_chance.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            let timed_out = |error: &KafkaError| match error {
                KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut) => true,
                _ => classify(error).is_some_and(|e| e.is_retriable()),
            };
            match self.producer.commit_transaction(remaining) {
                Ok(()) => {
                    self.begun.set(None);
                    return Ok(progress);
                }
                // The same call again: it resumes the commit.
                Err(error) if timed_out(&error) && Instant::now() < last_chance => {}
                Err(error) => return Err(self.failure(&error)),
            }
        }
    }

    /// `progress` with, per declared state, where its changelog's
    /// deliveries end: waits for the changelog records' delivery reports
    /// first (one round trip more per commit, only with declared state).
    fn with_changelog_ends(
        &self,
        progress: &ProgressRecord,
        deadline: Instant,
    ) -> std::result::Result<ProgressRecord, Failure> {
        let mut progress = progress.clone();
        if self.topics.len() == 1 {
            return Ok(progress);
        }
        if !self.producer.wait_delivered(deadline)
            || !wait_reported(&self.producer, self.changelog_sent.get(), deadline)
        {
            return Err(Failure::Abortable("the changelog records were not delivered within the timeout".into()));
        }
        for ((index, partition), end) in self.producer.context().ends() {
            let topic = &self.topics[index + 1];
            if let Some(extent) = progress.states.values_mut().find(|extent| &extent.topic == topic) {
                let entry = extent.ends.entry(partition).or_default();
                *entry = (*entry).max(end);
            }
        }
        Ok(progress)
    }

    /// Queues one output or changelog record.
    fn send_out(&self, (topic, key, value): Out<'_>, deadline: Instant) -> std::result::Result<(), Failure> {
        let record = BaseRecord::to(&self.topics[topic]).key(key);
        let record = match value {
            Some(value) => record.payload(value),
            None => record,
        };
        self.send(record, deadline)?;
        if topic > 0 || self.output_watched {
            self.changelog_sent.set(self.changelog_sent.get() + 1);
        }
        Ok(())
    }

    /// Queues one record, waiting while the local queue is full.
    fn send(&self, mut record: BaseRecord<'_, [u8], [u8]>, deadline: Instant) -> std::result::Result<(), Failure> {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    if Instant::now() >= deadline {
                        return Err(Failure::Abortable("the local queue stayed full until the deadline".into()));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                    record = returned;
                }
                Err((error, _)) => return Err(self.failure(&error)),
            }
        }
    }

    fn abort(&self) -> std::result::Result<(), Failure> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            match self.producer.abort_transaction(remaining) {
                Ok(()) => {
                    self.begun.set(None);
                    return Ok(());
                }
                Err(error) if classify(&error).is_some_and(|e| e.is_retriable()) && Instant::now() < deadline => {}
                Err(error) => {
                    return Err(match self.failure(&error) {
                        Failure::Abortable(reason) => Failure::Fatal(reason),
                        fatal => fatal,
                    })
                }
            }
        }
    }

    /// [`fatal_or_abortable`], telling a fenced writer (a newer instance
    /// started) from a transaction the broker aborted for its age.
    fn failure(&self, error: &KafkaError) -> Failure {
        let fenced = classify(error).is_some_and(|inner| {
            matches!(
                inner.code(),
                RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch
            )
        });
        if !fenced {
            return fatal_or_abortable(error);
        }
        match self.begun.get().map(|begun| begun.elapsed()) {
            Some(age) if age >= self.transaction_timeout => Failure::Fatal(format!(
                "the broker aborted the transaction: it was open {:.1}s, longer than transaction.timeout.ms ({:?}) \
                 (a worker stalled, or the broker was slow); a restart resumes from the last commit: {error}",
                age.as_secs_f64(),
                self.transaction_timeout
            )),
            _ => {
                super::metrics::fenced(&self.output);
                Failure::Fatal(format!("fenced by a newer instance of this pipeline (this one is a zombie): {error}"))
            }
        }
    }
}

/// Fatal (fenced, misconfigured) or unclassified errors stop the sink;
/// those librdkafka says require an abort, and plain produce errors (the
/// record was never part of a commit), restart the transaction.
fn fatal_or_abortable(error: &KafkaError) -> Failure {
    match classify(error) {
        Some(inner) if inner.is_fatal() => Failure::Fatal(format!("fatal transaction error: {error}")),
        Some(inner) if inner.txn_requires_abort() => Failure::Abortable(error.to_string()),
        Some(_) => Failure::Fatal(format!("transaction error: {error}")),
        None => match error {
            KafkaError::MessageProduction(_) => Failure::Abortable(error.to_string()),
            _ => Failure::Fatal(error.to_string()),
        },
    }
}
