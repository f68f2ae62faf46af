//! How a [`TransactionalWriter`] starts: before the pipeline reads its
//! progress, the writer must own the transactional id and know the broker
//! implements transactions.
//!
//! - `transaction.timeout.ms` is checked against the broker's
//!   `transaction.max.timeout.ms` (above it, `init_transactions` fails
//!   fatally);
//! - `init_transactions` fences every earlier instance with the same
//!   transactional id and aborts its open transaction;
//! - one probe record is written in a transaction that is aborted, so the
//!   progress read can tell a broker whose read_committed readers see
//!   aborted records (librdkafka's mock cluster) from one that implements
//!   transactions.

use std::cell::Cell;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::super::budget::check_transaction_timeout;
use super::super::delivered::Delivered;
use super::super::progress::probe_key;
use super::failure::Failure;
use super::TransactionalWriter;
use crate::error::{Error, Result};
use crate::log::kafka::polled::PolledProducer;
use crate::log::kafka::{KafkaLog, CONSUMER_ONLY};

impl TransactionalWriter {
    /// Creates the producer, checks the transaction timeout and fences
    /// earlier instances.
    pub(in super::super) fn start(
        log: &KafkaLog,
        id: &str,
        output: &str,
        changelogs: &[String],
        progress_topic: &str,
        transaction_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self> {
        let what = format!("exactly-once sink (transactional.id '{id}')");
        // The check costs two round trips: it runs
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
    pub(in super::super) fn probe(&self) -> Result<()> {
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
}
