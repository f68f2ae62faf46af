//! How a [`TransactionalWriter`] commits: the outputs, then the progress
//! record that says what they cover, in one transaction.
//!
//! A commit is the pipeline's one commit point, so it must not give up
//! easily: a commit that timed out is resumed (an abort would throw the
//! delivered records away), and an abortable failure restarts the whole
//! transaction from the outputs the sink still buffers, a bounded number
//! of times. With declared state, the progress record also stores where
//! each changelog's records end, known only once they are delivered.

use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};

use super::super::delivered::wait_reported;
use super::super::progress::ProgressRecord;
use super::failure::{classify, Failure};
use super::{Out, TransactionalWriter};
use crate::error::{Error, Result};

/// How often an abortable failure restarts the transaction before the sink gives up.
const ATTEMPTS: u32 = 5;

impl TransactionalWriter {
    /// Commits `outputs` and, last, `progress`, in one transaction; an
    /// abortable failure restarts it (a bounded number of times). If
    /// [`TransactionalWriter::send_early`] opened the transaction, `rest`
    /// (the outputs it did not send) is sent to finish it first; `outputs`
    /// must then include what was sent early (a restart sends it again).
    /// Returns the progress record committed: `progress` with its
    /// changelogs' ends.
    pub(in super::super) fn commit<'a, I, R>(
        &self,
        rest: R,
        outputs: impl Fn() -> I,
        progress: &ProgressRecord,
    ) -> Result<ProgressRecord>
    where
        I: Iterator<Item = Out<'a>>,
        R: Iterator<Item = Out<'a>>,
    {
        let mut last = String::new();
        if self.open.replace(false) {
            match self.try_commit(false, rest, progress) {
                Ok(committed) => return Ok(committed),
                Err(failure) => last = self.abort_to_retry(failure)?,
            }
        }
        for _ in 0..ATTEMPTS {
            match self.try_commit(true, outputs(), progress) {
                Ok(committed) => return Ok(committed),
                Err(failure) => last = self.abort_to_retry(failure)?,
            }
        }
        Err(Error::kafka(format!("{}: commit {} aborted {ATTEMPTS} times; last: {last}", self.what(), progress.commit)))
    }

    /// After a failed attempt at a commit: a fatal failure is the sink's
    /// error; an abortable one aborts the transaction, so that the next
    /// attempt starts it again, and returns its reason.
    fn abort_to_retry(&self, failure: Failure) -> Result<String> {
        let what = self.what();
        let last = match failure {
            Failure::Fatal(reason) => return Err(Error::kafka(format!("{what}: {reason}"))),
            Failure::Abortable(reason) => reason,
        };
        if let Err(Failure::Fatal(reason) | Failure::Abortable(reason)) = self.abort() {
            return Err(Error::kafka(format!("{what}: abort after '{last}' failed: {reason}")));
        }
        super::super::metrics::aborted(&self.output);
        Ok(last)
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
}
