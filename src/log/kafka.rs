//! The Kafka backend: the partition log over Apache Kafka through rdkafka.
//!
//! Producing is idempotent (`enable.idempotence=true`, `acks=all`), so a
//! request librdkafka retries can neither duplicate nor reorder a partition's
//! records. A full local queue is backpressure: `append` serves delivery
//! reports and retries instead of failing. Every delivery report is checked;
//! the first failure fails the capture with the broker's error. `flush`
//! waits, for a bounded time, until every record is acknowledged.
//!
//! Consuming assigns partitions explicitly and starts at an explicit offset:
//! replay never depends on consumer-group offsets. `auto.offset.reset=error`
//! turns "the offset I asked for was deleted by retention" into an error
//! instead of a silent jump. Fetch settings favour catching up fast: brokers
//! such as tansu answer a fetch only when `fetch.wait.max.ms` expires, so it
//! defaults to 5 ms here instead of librdkafka's 500.
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
//! | `message.timeout.ms` | `30000` | a failing broker fails the capture in bounded time |
//! | `fetch.wait.max.ms` | `5` | fast catch-up on brokers that wait out the fetch |
//! | `fetch.max.bytes` / `max.partition.fetch.bytes` | 50 MB / 10 MB | big fetches |
//! | `queued.max.messages.kbytes` | `262144` | deep prefetch |
//! | `auto.offset.reset` | `error` | never silently skip deleted data |
//! | `allow.auto.create.topics` | `false` | topics are created deliberately |

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::{LogBackend, PartitionReader, PartitionWriter, Record, TopicInfo};
use crate::error::{Error, PartitionId, Result};
use crate::frame::CodecId;

/// Default bound on metadata, admin and flush waits.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Room left for Kafka's batch and record overhead below `message.max.bytes`.
const RECORD_OVERHEAD: usize = 1024;

/// Properties our clients set unless the user overrides them.
pub(crate) const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "5"),
    ("batch.size", "1000000"),
    ("compression.type", "none"),
    ("message.timeout.ms", "30000"),
    ("allow.auto.create.topics", "false"),
];
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("group.id", "timely-kafka-replay"),
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("enable.partition.eof", "true"),
    ("auto.offset.reset", "error"),
    ("fetch.wait.max.ms", "5"),
    ("fetch.min.bytes", "1"),
    ("fetch.max.bytes", "52428800"),
    ("max.partition.fetch.bytes", "10485760"),
    ("queued.max.messages.kbytes", "262144"),
    ("allow.auto.create.topics", "false"),
];
/// Properties only one kind of client understands (librdkafka warns about the others).
pub(crate) const PRODUCER_ONLY: &[&str] = &[
    "enable.idempotence",
    "acks",
    "linger.ms",
    "batch.size",
    "compression.type",
    "message.timeout.ms",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "batch.num.messages",
    "retries",
    "retry.backoff.ms",
    "delivery.timeout.ms",
    "request.required.acks",
    "transactional.id",
];
pub(crate) const CONSUMER_ONLY: &[&str] = &[
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "auto.offset.reset",
    "fetch.wait.max.ms",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "queued.max.messages.kbytes",
    "queued.min.messages",
    "isolation.level",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "group.instance.id",
];

/// The Kafka backend: a broker list plus client properties.
#[derive(Clone)]
pub struct KafkaLog {
    brokers: String,
    properties: Vec<(String, String)>,
    replication_factor: i32,
    timeout: Duration,
}

impl KafkaLog {
    /// A backend for `brokers` (`host:port[,...]`) with extra librdkafka
    /// `properties`. Checks that the brokers answer within the timeout.
    pub fn new(brokers: &str, properties: &[(String, String)]) -> Result<Self> {
        let log = Self::unchecked(brokers, properties)?;
        log.metadata_client()?
            .fetch_metadata(None, log.timeout)
            .map_err(|e| Error::Kafka(format!("brokers {brokers} did not answer within {:?}: {e}", log.timeout)))?;
        Ok(log)
    }

    /// A backend without the initial connection check.
    pub fn unchecked(brokers: &str, properties: &[(String, String)]) -> Result<Self> {
        if brokers.trim().is_empty() {
            return Err(Error::Config("--brokers is empty".into()));
        }
        let mut log = KafkaLog {
            brokers: brokers.to_string(),
            properties: Vec::new(),
            replication_factor: -1,
            timeout: DEFAULT_TIMEOUT,
        };
        for (key, value) in properties {
            match key.as_str() {
                "replication.factor" => {
                    log.replication_factor = value
                        .parse()
                        .map_err(|_| Error::Config(format!("replication.factor: not an integer: '{value}'")))?
                }
                "timeout.ms" => {
                    let ms: u64 =
                        value.parse().map_err(|_| Error::Config(format!("timeout.ms: not an integer: '{value}'")))?;
                    log.timeout = Duration::from_millis(ms);
                }
                _ => log.properties.push((key.clone(), value.clone())),
            }
        }
        Ok(log)
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

    fn metadata_client(&self) -> Result<BaseConsumer> {
        self.consumer_config().create().map_err(|e| Error::Kafka(format!("cannot create client: {e}")))
    }

    fn admin(&self) -> Result<AdminClient<DefaultClientContext>> {
        self.config(&[], &[PRODUCER_ONLY, CONSUMER_ONLY].concat())
            .create()
            .map_err(|e| Error::Kafka(format!("cannot create admin client: {e}")))
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

    fn partition_count(&self, client: &BaseConsumer, topic: &str) -> Result<Option<u32>> {
        let metadata = client
            .fetch_metadata(Some(topic), self.timeout)
            .map_err(|e| Error::Kafka(format!("metadata for topic '{topic}' within {:?}: {e}", self.timeout)))?;
        let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else { return Ok(None) };
        match entry.error() {
            None => Ok(Some(entry.partitions().len() as u32)),
            Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => Ok(None),
            Some(error) => Err(Error::Kafka(format!("topic '{topic}': {}", RDKafkaErrorCode::from(error)))),
        }
    }

    fn wait_for_partitions(&self, topic: &str, wanted: Option<u32>) -> Result<()> {
        let client = self.metadata_client()?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let count = self.partition_count(&client, topic)?;
            let ready = match wanted {
                Some(wanted) => count.is_some_and(|n| n >= wanted),
                None => count.is_none(),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let what = match wanted {
                    Some(n) => format!("to appear with {n} partitions"),
                    None => "to be deleted".to_string(),
                };
                return Err(Error::Kafka(format!("topic '{topic}' did not {what} within {:?}", self.timeout)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn delete_topic(&self, topic: &str) -> Result<()> {
        let admin = self.admin()?;
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = futures_executor::block_on(admin.delete_topics(&[topic], &options))
            .map_err(|e| Error::Kafka(format!("delete topic '{topic}': {e}")))?;
        for result in results {
            if let Err((name, code)) = result {
                return Err(Error::Kafka(format!("delete topic '{name}': {code}")));
            }
        }
        self.wait_for_partitions(topic, None)
    }

    fn create(&self, topic: &str, partitions: u32) -> Result<()> {
        let admin = self.admin()?;
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let new_topic = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(self.replication_factor));
        let results = futures_executor::block_on(admin.create_topics(&[new_topic], &options)).map_err(|e| {
            Error::Kafka(format!(
                "create topic '{topic}' with {partitions} partitions: {e} (if the broker does not support \
                 CreateTopics, create the topic yourself)"
            ))
        })?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(Error::Kafka(format!(
                        "create topic '{name}' with {partitions} partitions: {code} (if the broker does not \
                         support CreateTopics, create the topic yourself)"
                    )))
                }
            }
        }
        self.wait_for_partitions(topic, Some(partitions))
    }

    fn has_data(&self, client: &BaseConsumer, topic: &str, partitions: u32) -> Result<bool> {
        for partition in 0..partitions {
            let (low, high) = client
                .fetch_watermarks(topic, partition as i32, self.timeout)
                .map_err(|e| Error::Kafka(format!("watermarks of topic '{topic}' partition {partition}: {e}")))?;
            if high > low {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl LogBackend for KafkaLog {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn topic_info(&self, topic: &str) -> Result<Option<TopicInfo>> {
        let client = self.metadata_client()?;
        let Some(partitions) = self.partition_count(&client, topic)? else { return Ok(None) };
        let has_data = self.has_data(&client, topic, partitions)?;
        Ok(Some(TopicInfo { partitions, has_data }))
    }

    fn create_topic(&self, topic: &str, partitions: u32, _codec: CodecId, overwrite: bool) -> Result<()> {
        if partitions == 0 {
            return Err(Error::Config(format!("topic '{topic}': partition count must be at least 1")));
        }
        match self.topic_info(topic)? {
            None => self.create(topic, partitions),
            Some(info) if info.has_data && !overwrite => Err(Error::TopicNotEmpty(topic.to_string())),
            Some(info) if !info.has_data && info.partitions >= partitions => Ok(()),
            Some(_) if overwrite => {
                self.delete_topic(topic)?;
                self.create(topic, partitions)
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

/// Delivery bookkeeping shared with librdkafka's callback.
struct Deliveries {
    acked: AtomicU64,
    /// Acknowledgements that carried an offset (a batch acknowledged as a
    /// duplicate of an earlier send carries none), and their range.
    with_offset: AtomicU64,
    min_offset: AtomicI64,
    max_offset: AtomicI64,
    first_error: Mutex<Option<String>>,
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries {
            acked: AtomicU64::new(0),
            with_offset: AtomicU64::new(0),
            min_offset: AtomicI64::new(i64::MAX),
            max_offset: AtomicI64::new(-1),
            first_error: Mutex::new(None),
        }
    }
}

struct DeliveryContext {
    deliveries: Arc<Deliveries>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                let deliveries = &self.deliveries;
                if message.offset() >= 0 {
                    deliveries.with_offset.fetch_add(1, Ordering::Relaxed);
                    deliveries.min_offset.fetch_min(message.offset(), Ordering::Relaxed);
                    deliveries.max_offset.fetch_max(message.offset(), Ordering::Relaxed);
                }
                deliveries.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                let reason =
                    format!("delivery failed: {error} (topic {} partition {})", message.topic(), message.partition());
                if let Ok(mut slot) = self.deliveries.first_error.lock() {
                    slot.get_or_insert(reason);
                }
            }
        }
    }
}

/// Produces to one partition; checks every acknowledgement.
pub struct KafkaWriter {
    id: PartitionId,
    producer: BaseProducer<DeliveryContext>,
    deliveries: Arc<Deliveries>,
    sent: u64,
    timeout: Duration,
    max_record: usize,
}

impl KafkaWriter {
    fn new(log: &KafkaLog, topic: &str, partition: u32) -> Result<Self> {
        let deliveries = Arc::new(Deliveries::default());
        let context = DeliveryContext { deliveries: deliveries.clone() };
        let producer = log
            .producer_config()
            .create_with_context(context)
            .map_err(|e| Error::Kafka(format!("cannot create producer: {e}")))?;
        Ok(KafkaWriter {
            id: PartitionId::new(topic, partition),
            producer,
            deliveries,
            sent: 0,
            timeout: log.timeout,
            max_record: log.max_record(),
        })
    }

    fn check_deliveries(&self) -> Result<()> {
        let error = self.deliveries.first_error.lock().map(|e| e.clone()).unwrap_or_default();
        match error {
            Some(reason) => Err(Error::Write { at: self.id.clone(), reason }),
            None => Ok(()),
        }
    }

    /// Acknowledgements alone are not proof. This writer is its partition's
    /// only writer, so its records hold a contiguous range of offsets: the
    /// acknowledged offsets must span exactly the records sent. A batch
    /// acknowledged as a duplicate carries no offset; if such batches sit at
    /// the edge of the range, the partition's end offset decides. This turns
    /// two silent failures into errors: a broker acknowledging a retried batch
    /// it never stored (librdkafka's mock cluster checks idempotent sequence
    /// numbers only for transactional producers), and a second writer
    /// interleaving records into the partition.
    fn check_offsets(&self) -> Result<()> {
        let deliveries = &self.deliveries;
        let with_offset = deliveries.with_offset.load(Ordering::Relaxed);
        if with_offset == 0 {
            return Ok(());
        }
        let (min, max) = (deliveries.min_offset.load(Ordering::Relaxed), deliveries.max_offset.load(Ordering::Relaxed));
        let span = (max - min + 1) as u64;
        let sent = self.sent;
        let complete = match span.cmp(&sent) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Less => {
                let (_, end) = self
                    .producer
                    .client()
                    .fetch_watermarks(&self.id.topic, self.id.partition as i32, self.timeout)
                    .map_err(|e| Error::Write {
                        at: self.id.clone(),
                        reason: format!("cannot read the end offset: {e}"),
                    })?;
                (end - min) as u64 == sent
            }
        };
        if complete {
            return Ok(());
        }
        Err(Error::Write {
            at: self.id.clone(),
            reason: format!(
                "the broker acknowledged {sent} records at offsets spanning {min}..={max} ({with_offset} with an \
                 offset): records were lost, or another writer shares the partition"
            ),
        })
    }

    fn unacknowledged(&self) -> u64 {
        self.sent.saturating_sub(self.deliveries.acked.load(Ordering::Relaxed))
    }
}

impl PartitionWriter for KafkaWriter {
    fn partition(&self) -> &PartitionId {
        &self.id
    }

    fn append(&mut self, record: &[u8]) -> Result<()> {
        let mut pending =
            BaseRecord::<(), [u8]>::to(&self.id.topic).partition(self.id.partition as i32).payload(record);
        let mut waited_since: Option<Instant> = None;
        loop {
            match self.producer.send(pending) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // Backpressure: serve delivery reports until there is room.
                    let since = *waited_since.get_or_insert_with(Instant::now);
                    self.producer.poll(Duration::from_millis(10));
                    self.check_deliveries()?;
                    if since.elapsed() > self.timeout + Duration::from_secs(self.timeout.as_secs()) {
                        return Err(Error::Write {
                            at: self.id.clone(),
                            reason: format!(
                                "local queue stayed full for {:?}; {} records unacknowledged",
                                since.elapsed(),
                                self.unacknowledged()
                            ),
                        });
                    }
                    pending = returned;
                }
                Err((error, _)) => return Err(Error::Write { at: self.id.clone(), reason: error.to_string() }),
            }
        }
        self.sent += 1;
        if self.sent.is_multiple_of(1024) {
            self.producer.poll(Duration::ZERO);
            self.check_deliveries()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let result = self.producer.flush(self.timeout);
        self.producer.poll(Duration::ZERO);
        self.check_deliveries()?;
        if result.is_err() || self.unacknowledged() > 0 {
            return Err(Error::Write {
                at: self.id.clone(),
                reason: format!(
                    "{} of {} records still unacknowledged after {:?}",
                    self.unacknowledged(),
                    self.sent,
                    self.timeout
                ),
            });
        }
        self.check_offsets()
    }

    fn publish(&mut self) -> Result<()> {
        self.producer.poll(Duration::ZERO);
        self.check_deliveries()
    }

    fn max_record_bytes(&self) -> usize {
        self.max_record
    }
}

/// Reads one partition from an explicit offset.
pub struct KafkaReader {
    id: PartitionId,
    consumer: BaseConsumer,
    buffer: Vec<u8>,
    timeout: Duration,
    /// Offset to assign the partition at before the next poll.
    start_at: Option<u64>,
}

impl KafkaReader {
    fn new(log: &KafkaLog, topic: &str, partition: u32, offset: u64) -> Result<Self> {
        let consumer: BaseConsumer =
            log.consumer_config().create().map_err(|e| Error::Kafka(format!("cannot create consumer: {e}")))?;
        Ok(KafkaReader {
            id: PartitionId::new(topic, partition),
            consumer,
            buffer: Vec::new(),
            timeout: log.timeout,
            start_at: Some(offset),
        })
    }

    /// Assigns the partition at the pending start offset. Deferred to the
    /// first poll so a reader that seeks first never fetches from its old
    /// position.
    fn assign_pending(&mut self) -> Result<()> {
        let Some(offset) = self.start_at.take() else { return Ok(()) };
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&self.id.topic, self.id.partition as i32, Offset::Offset(offset as i64))
            .map_err(|e| Error::Kafka(e.to_string()))?;
        self.consumer
            .assign(&assignment)
            .map_err(|e| Error::Kafka(format!("{}: assign at offset {offset}: {e}", self.id)))
    }
}

impl PartitionReader for KafkaReader {
    fn partition(&self) -> &PartitionId {
        &self.id
    }

    fn poll(&mut self, timeout: Duration) -> Result<Option<Record<'_>>> {
        self.assign_pending()?;
        let deadline = if timeout.is_zero() { None } else { Some(Instant::now() + timeout) };
        loop {
            let remaining = deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(Instant::now()));
            match self.consumer.poll(remaining) {
                None => return Ok(None),
                Some(Ok(message)) => {
                    let offset = message.offset() as u64;
                    self.buffer.clear();
                    self.buffer.extend_from_slice(message.payload().unwrap_or_default());
                    return Ok(Some(Record { offset, payload: &self.buffer }));
                }
                Some(Err(KafkaError::PartitionEOF(_))) => return Ok(None),
                Some(Err(KafkaError::MessageConsumption(
                    RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset,
                ))) => {
                    let first = self
                        .consumer
                        .fetch_watermarks(&self.id.topic, self.id.partition as i32, self.timeout)
                        .map(|(low, _)| format!("first available offset {low}"))
                        .unwrap_or_else(|e| format!("watermarks unavailable: {e}"));
                    return Err(Error::Protocol {
                        at: self.id.clone(),
                        offset: 0,
                        reason: format!(
                            "stream start is gone: the requested offset is no longer stored (deleted by retention?); {first}"
                        ),
                    });
                }
                Some(Err(KafkaError::MessageConsumption(
                    code @ (RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::TopicAuthorizationFailed),
                ))) => {
                    return Err(Error::Kafka(format!("{}: {code}", self.id)));
                }
                // Transient: librdkafka reconnects and retries by itself; the
                // replay's idle timeout bounds how long we keep waiting.
                Some(Err(_)) => {
                    if deadline.is_none_or(|d| Instant::now() >= d) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn first_available_offset(&mut self) -> Result<Option<u64>> {
        let (low, _) = self
            .consumer
            .fetch_watermarks(&self.id.topic, self.id.partition as i32, self.timeout)
            .map_err(|e| Error::Kafka(format!("{}: watermarks: {e}", self.id)))?;
        Ok(Some(low.max(0) as u64))
    }

    fn end_offset(&mut self) -> Result<u64> {
        let (_, high) = self
            .consumer
            .fetch_watermarks(&self.id.topic, self.id.partition as i32, self.timeout)
            .map_err(|e| Error::Kafka(format!("{}: watermarks: {e}", self.id)))?;
        Ok(high.max(0) as u64)
    }

    fn seek(&mut self, offset: u64) -> Result<()> {
        self.start_at = Some(offset);
        Ok(())
    }
}
