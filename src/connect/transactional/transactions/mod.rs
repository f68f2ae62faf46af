//! The transactional producer, [`TransactionalWriter`]: the one writer of
//! a pipeline, which sends its outputs and changelog records and commits
//! them with a progress record, each of librdkafka's transactional error
//! classes handled.
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
//! One concept a file: `start` (check, fence, probe) makes the writer,
//! this file sends records and aborts, `commit` ends a transaction and
//! retries it, `failure` sorts an error into its class. A commit may take
//! `timeout`, so the configuration must keep `timeout` below
//! `transaction.timeout.ms`, and a transaction holding early outputs is
//! ended within `budget::max_open`.

mod commit;
mod failure;
mod start;

use std::cell::Cell;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};

use super::budget::max_open;
use super::delivered::Delivered;
use crate::error::{Error, Result};
use crate::log::kafka::polled::PolledProducer;
use failure::{classify, Failure};

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
}
