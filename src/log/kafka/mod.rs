//! The Kafka backend: the partition log over Apache Kafka through rdkafka.
//!
//! Producing is idempotent (`enable.idempotence=true`, `acks=all`), so a
//! request librdkafka retries can neither duplicate nor reorder a partition's
//! records. One producer client serves the whole process (every writer and
//! sink of a [`KafkaLog`] and its clones; see `producer.rs` for why and how
//! the per-partition checks stay exact). Its local queue is bounded (64 MiB):
//! a full queue is backpressure, `append` waits and retries instead of
//! failing, so memory stays bounded however slow the broker. Every delivery
//! report is checked; the first failure fails the capture with the broker's
//! error. `flush` waits, for a bounded time, until every record of *that
//! writer* is acknowledged.
//!
//! Consuming assigns partitions explicitly and starts at an explicit offset:
//! replay never depends on consumer-group offsets. `auto.offset.reset=error`
//! turns "the offset I asked for was deleted by retention" into an error
//! instead of a silent jump. Fetch settings favour catching up fast: brokers
//! such as tansu answer a fetch only when `fetch.wait.max.ms` expires, and
//! Apache Kafka waits it out at the end of every partition (an 80 MB replay:
//! 599 MB/s with 5 ms, 440 with 50, 125 with librdkafka's 500), so it
//! defaults to 5 ms here.
//!
//! Defaults (each overridable with `-X key=value`):
//!
//! | property | default | why |
//! |---|---|---|
//! | `enable.idempotence` | `true` | no duplicates or reordering on retry |
//! | `acks` | `all` | acknowledged = replicated |
//! | `linger.ms` | `5` | batch small events without adding visible latency |
//! | `batch.size` | `1000000` | large batches for throughput |
//! | `compression.type` | `none` | frames are often incompressible; opt in |
//! | `message.timeout.ms` | `120000` | a failing broker fails the capture in bounded time; a leader failover or a rolling restart on a loaded cluster does not (Kafka's own `delivery.timeout.ms`; 30 s, which equals librdkafka's request timeout, left a request stuck on a stopping broker no retry) |
//! | `queue.buffering.max.kbytes` | `65536` | the process's producer buffers at most 64 MiB (librdkafka: 1 GB) |
//! | `fetch.wait.max.ms` | `5` | fast catch-up: tansu waits out every fetch, Apache Kafka the one at a partition's end |
//! | `fetch.max.bytes` / `max.partition.fetch.bytes` | 16 MiB / 4 MiB | large fetches, bounded buffers |
//! | `queued.max.messages.kbytes` | `2048` | prefetch at most 2 MiB per partition read (plus the fetch in flight) |
//! | `fetch.queue.backoff.ms` | `2` | a full prefetch queue delays the next fetch 2 ms, not librdkafka's 1 s |
//! | `auto.offset.reset` | `error` | never silently skip deleted data |
//! | `allow.auto.create.topics` | `false` | topics are created deliberately |
//! | `enable.sparse.connections` | `false` (metadata client only) | a new client's first metadata answer took ~50 ms in half the tries |
//!
//! Start-up and shut-down are kept short because replay and capture pay
//! them on every run: one metadata client per [`KafkaLog`] (cached), readers
//! that close without rust-rdkafka's 100 ms drop wait (`quick_close.rs`), and
//! a producer started while the topic is created
//! ([`BackendHooks::prepare_writers`]), whose polling thread stops within 10 ms.

mod admin;
pub(crate) mod client_errors;
mod config;
mod describe_configs;
pub(crate) mod metadata;
mod native_admin;
mod ordering;
pub(crate) mod polled;
mod producer;
mod quick_close;
mod reader;
pub(crate) mod retry;
mod topic_id;
mod watermarks;
mod writer;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;

use client_errors::{ClientErrors, Refusal};

use super::{BackendHooks, LogBackend, PartitionReader, PartitionWriter, TopicInfo};
use crate::error::{Error, Result};

pub use config::DEFAULT_TIMEOUT;
use config::RECORD_OVERHEAD;
pub use config::{CONSUMER_DEFAULTS, METADATA_CLIENT_DEFAULTS, PRODUCER_DEFAULTS};
pub(crate) use config::{CONSUMER_ONLY, PRODUCER_ONLY};
pub(crate) use producer::{send_record, Deliveries, SharedProducer};
pub(crate) use quick_close::QuickClose;
pub use reader::KafkaReader;
pub use writer::KafkaWriter;

/// The Kafka backend: a broker list plus client properties.
///
/// Clones share one producer client (see `producer.rs`): every writer and
/// sink created through this value or its clones sends through it.
#[derive(Clone)]
pub struct KafkaLog {
    brokers: String,
    properties: Vec<(String, String)>,
    replication_factor: i32,
    timeout: Duration,
    producer: Arc<Mutex<Option<Arc<SharedProducer>>>>,
    metadata: Arc<Mutex<Option<Arc<QuickClose>>>>,
}

impl std::fmt::Debug for KafkaLog {
    /// Brokers and settings; property values are left out (they may hold
    /// credentials, e.g. `sasl.password`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.properties.iter().map(|(key, _)| key.as_str()).collect();
        f.debug_struct("KafkaLog")
            .field("brokers", &self.brokers)
            .field("properties", &keys)
            .field("replication_factor", &self.replication_factor)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl KafkaLog {
    /// A backend for `brokers` (`host:port[,...]`) with extra librdkafka
    /// `properties`. Checks that the brokers answer within the timeout
    /// ([`DEFAULT_TIMEOUT`]; for another one: `unchecked`, `with_timeout`,
    /// then `checked`).
    pub fn new(brokers: &str, properties: &[(String, String)]) -> Result<Self> {
        Self::unchecked(brokers, properties)?.checked()
    }

    /// Checks that the brokers answer within the timeout.
    /// A broker that refuses the client (credentials, TLS, protocol) fails
    /// it at once, in one line naming the cause (`client_errors.rs`).
    pub fn checked(self) -> Result<Self> {
        let client = self.metadata_client()?;
        let started = Instant::now();
        loop {
            if let Some(refused) = client.context().refused() {
                return Err(refused_error(&self.brokers, &refused));
            }
            let left = self.timeout.saturating_sub(started.elapsed());
            let error = match client.fetch_metadata(None, left.min(CHECK_STEP)) {
                Ok(_) => return Ok(self),
                Err(error) => error,
            };
            // rust-rdkafka queues librdkafka's log lines and errors on the
            // client's main queue: they reach the context when it is polled.
            for _ in 0..64 {
                if client.poll(Duration::ZERO).is_none() {
                    break;
                }
            }
            if let Some(refused) = client.context().refused() {
                return Err(refused_error(&self.brokers, &refused));
            }
            if !retry::transient(&error) || started.elapsed() >= self.timeout {
                return Err(Error::kafka_from(
                    format!("brokers {} did not answer within {:?}", self.brokers, self.timeout),
                    &error,
                ));
            }
        }
    }

    /// The bound on every wait of this backend that librdkafka does not
    /// bound itself: brokers answering, topic metadata, flushes, offsets.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A backend without the initial connection check. `properties` are
    /// librdkafka's only; this crate's own settings are the `with_*`
    /// methods.
    pub fn unchecked(brokers: &str, properties: &[(String, String)]) -> Result<Self> {
        if brokers.trim().is_empty() {
            return Err(Error::Config("the broker list is empty".into()));
        }
        Ok(KafkaLog {
            brokers: brokers.to_string(),
            properties: properties.to_vec(),
            replication_factor: -1,
            timeout: DEFAULT_TIMEOUT,
            producer: Arc::default(),
            metadata: Arc::default(),
        })
    }

    /// The value of client property `key`, if given.
    pub(crate) fn property(&self, key: &str) -> Option<&str> {
        self.properties.iter().rev().find(|(k, _)| k == key).map(|(_, value)| value.as_str())
    }

    /// Replication factor for created topics (-1: the broker's default).
    pub fn with_replication_factor(mut self, factor: Option<i32>) -> Self {
        if let Some(factor) = factor {
            self.replication_factor = factor;
        }
        self
    }

    pub(crate) fn config(&self, defaults: &[(&str, &str)], skip: &[&str]) -> ClientConfig {
        let mut config = ClientConfig::new();
        // librdkafka's lines down to info level reach the clients'
        // contexts, which read the causes of refusals from them
        // (`client_errors.rs`); rust-rdkafka derives the level from the
        // `log` crate's, which is off unless the program installed a logger.
        config.set_log_level(rdkafka::config::RDKafkaLogLevel::Info);
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            if !skip.contains(&key.as_str()) {
                config.set(key, value);
            }
        }
        config
    }

    fn producer_config(&self) -> ClientConfig {
        self.config(PRODUCER_DEFAULTS, CONSUMER_ONLY)
    }

    fn consumer_config(&self) -> ClientConfig {
        self.config(CONSUMER_DEFAULTS, PRODUCER_ONLY)
    }

    /// The client metadata questions go through, created on first use and
    /// shared by clones: a new client costs a connection and, on some
    /// brokers, tens of milliseconds before its first answer.
    fn metadata_client(&self) -> Result<Arc<QuickClose>> {
        let mut cached = self.metadata.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = cached.as_ref() {
            return Ok(client.clone());
        }
        let client = Arc::new(self.fresh_client().map_err(|e| Error::kafka_from("cannot create client", &e))?);
        *cached = Some(client.clone());
        Ok(client)
    }

    /// A new metadata client, for a question a cached client could not
    /// answer (see `watermarks.rs`).
    pub(crate) fn fresh_client(&self) -> rdkafka::error::KafkaResult<QuickClose> {
        self.config(&[CONSUMER_DEFAULTS, METADATA_CLIENT_DEFAULTS].concat(), PRODUCER_ONLY)
            .create_with_context(ClientErrors::default())
            .map(QuickClose::new)
    }

    fn consumer(&self) -> Result<QuickClose> {
        self.consumer_config()
            .create_with_context(ClientErrors::default())
            .map(QuickClose::new)
            .map_err(|e| Error::kafka_from("cannot create consumer", &e))
    }

    fn admin(&self) -> Result<AdminClient<DefaultClientContext>> {
        self.config(&[], &[PRODUCER_ONLY, CONSUMER_ONLY].concat())
            .create()
            .map_err(|e| Error::kafka_from("cannot create admin client", &e))
    }

    /// A producer started before `topic` was deleted and created again
    /// holds the old topic's metadata and stalled on it for most of a
    /// second (measured on tansu); asking for the topic's metadata through
    /// it replaces what it holds.
    fn refresh_producer_metadata(&self, topic: &str) {
        let producer = self.producer.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(producer) = producer {
            let _ = producer.client().fetch_metadata(Some(topic), self.timeout);
        }
    }

    /// How long a flush waits for delivery reports: librdkafka reports every
    /// record within `message.timeout.ms` (acknowledged or failed), so a
    /// flush waits that long plus a margin, and at least the backend's
    /// timeout. A wait shorter than the delivery bound would fail a capture
    /// whose records were still being retried (a broker restarting).
    fn delivery_wait(&self) -> Duration {
        let delivery_ms = self
            .properties
            .iter()
            .rev()
            .find(|(k, _)| k == "message.timeout.ms" || k == "delivery.timeout.ms")
            .map(|(_, v)| v.as_str())
            .or_else(|| PRODUCER_DEFAULTS.iter().find(|(k, _)| *k == "message.timeout.ms").map(|(_, v)| *v))
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .unwrap_or(0);
        self.timeout.max(Duration::from_millis(delivery_ms) + Duration::from_secs(5))
    }

    /// The largest record a writer sends before chunking.
    fn max_record(&self) -> usize {
        let limit = self
            .properties
            .iter()
            .find(|(k, _)| k == "message.max.bytes")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(1_000_000);
        limit.saturating_sub(RECORD_OVERHEAD).max(4096)
    }
}

/// How long one metadata request of the connection check may take: a
/// refusal librdkafka logs meanwhile is seen within this.
const CHECK_STEP: Duration = Duration::from_millis(500);

/// The error for a client its brokers refused.
fn refused_error(brokers: &str, refused: &Refusal) -> Error {
    use rdkafka::error::RDKafkaErrorCode;
    let code = match refused {
        Refusal::Authentication(_) => RDKafkaErrorCode::Authentication,
        Refusal::Tls(_) => RDKafkaErrorCode::SSL,
        Refusal::Protocol(_) => RDKafkaErrorCode::BrokerTransportFailure,
    };
    Error::kafka_code(format!("brokers {brokers}: {refused}"), code)
}

impl LogBackend for KafkaLog {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn partitions(&self, topic: &str) -> Result<Option<u32>> {
        let client = self.metadata_client()?;
        self.partition_count(&client, topic)
    }

    fn topic_info(&self, topic: &str) -> Result<Option<TopicInfo>> {
        let client = self.metadata_client()?;
        let Some(partitions) = self.partition_count(&client, topic)? else { return Ok(None) };
        let has_data = self.has_data(&client, topic, partitions)?;
        Ok(Some(TopicInfo { partitions, has_data }))
    }

    fn create_topic(&self, topic: &str, partitions: u32, overwrite: bool) -> Result<()> {
        if partitions == 0 {
            return Err(Error::Config(format!("topic '{topic}': partition count must be at least 1")));
        }
        match self.topic_info(topic)? {
            None => self.create(topic, partitions),
            Some(info) if info.has_data && !overwrite => Err(Error::TopicNotEmpty(topic.to_string())),
            Some(info) if !info.has_data && info.partitions >= partitions => Ok(()),
            Some(_) if overwrite => {
                self.delete_topic(topic)?;
                self.create(topic, partitions)?;
                self.refresh_producer_metadata(topic);
                Ok(())
            }
            Some(info) => {
                Err(Error::TooFewPartitions { topic: topic.to_string(), actual: info.partitions, wanted: partitions })
            }
        }
    }

    fn writer(&self, topic: &str, partition: u32) -> Result<Box<dyn PartitionWriter>> {
        Ok(Box::new(KafkaWriter::new(self, topic, partition)?))
    }

    fn reader(&self, topic: &str, partition: u32, offset: u64) -> Result<Box<dyn PartitionReader>> {
        Ok(Box::new(KafkaReader::new(self, topic, partition, offset)?))
    }
}

impl BackendHooks for KafkaLog {
    fn prepare_writers(&self) -> Result<()> {
        self.shared_producer().map(drop)
    }

    fn check_exactly_once(&self) -> Result<()> {
        self.check_exactly_once_settings()
    }
}

#[cfg(test)]
mod debug_tests {
    use super::KafkaLog;

    #[test]
    fn debug_names_brokers_and_property_keys_but_never_values() {
        let properties = [("sasl.password".to_string(), "hunter2".to_string())];
        let log = KafkaLog::unchecked("127.0.0.1:9", &properties).unwrap();
        let shown = format!("{log:?}");
        assert!(shown.contains("127.0.0.1:9") && shown.contains("sasl.password"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
