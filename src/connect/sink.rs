//! `stream.kafka_sink(..)`: a dataflow's `(key, value)` records out to a Kafka topic
//! (at least once; [`crate::connect::transactional`] writes transactionally).
//!
//! Records are produced as they arrive, with backpressure on a full local
//! queue. Whenever the input frontier advances, the sink waits for the
//! delivery reports of its records and checks every one: once the frontier
//! has passed a time, everything at that time is acknowledged by the broker,
//! or the sink fails with the broker's error naming the topic.
//!
//! Failing never panics (see `connect/status.rs`): a producer that
//! cannot be created, a missing topic, a failed delivery, a queue full for
//! too long or records unacknowledged after `flush_timeout` are recorded in
//! the sink's status, become the computation's failure (returned by
//! `execute`), and the sink drops the rest of its input.
//! The status reports completion only when the input ended with nothing
//! failed anywhere in the computation: an input frontier closed by a failed
//! source is not the end of the data.
//!
//! The sink sends through its [`KafkaLog`]'s producer, the one client shared
//! with every other sink and capture writer of that log in the process; its
//! delivery reports still reach only this sink (see `log::kafka::producer`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::BaseRecord;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;
use timely::progress::{Antichain, Timestamp};

use crate::error::Error;
use crate::log::kafka::metadata::existing_partition_count;
use crate::log::kafka::{send_record, Deliveries, KafkaLog, SharedProducer};
use crate::runtime::status::{load, sealed::Counted, Stats, Status};

/// Chooses a partition from a record's key and the topic's partition count.
pub type PartitionFn = Arc<dyn Fn(&[u8], u32) -> u32 + Send + Sync>;

/// How a [`KafkaSink::kafka_sink`] writes.
#[derive(Clone)]
pub struct SinkConfig {
    /// Brokers and client properties (`-X`).
    pub kafka: KafkaLog,
    /// `None`: Kafka's default partitioner (by key hash). `Some`: this one.
    pub partitioner: Option<PartitionFn>,
    /// Bound on each flush, and on the topic's metadata at start.
    pub flush_timeout: Duration,
}

impl std::fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkConfig")
            .field("kafka", &self.kafka)
            .field("partitioner", &self.partitioner.as_ref().map(|_| "custom"))
            .field("flush_timeout", &self.flush_timeout)
            .finish()
    }
}

impl SinkConfig {
    /// Writes through `kafka` with the default partitioner.
    pub fn new(kafka: KafkaLog) -> Self {
        SinkConfig { kafka, partitioner: None, flush_timeout: Duration::from_secs(30) }
    }

    /// Uses `partitioner` instead of Kafka's.
    pub fn partitioner(mut self, partitioner: impl Fn(&[u8], u32) -> u32 + Send + Sync + 'static) -> Self {
        self.partitioner = Some(Arc::new(partitioner));
        self
    }

    /// Sets the flush (and metadata) timeout.
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }
}

/// What a [`KafkaSink::kafka_sink`] counts, read through its [`Status`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Records handed to the producer.
    pub sent: u64,
    /// Records acknowledged by the broker.
    pub acknowledged: u64,
}

/// The counters behind [`SinkStats`].
#[derive(Default)]
#[doc(hidden)]
pub struct SinkCounters {
    sent: AtomicU64,
    deliveries: Arc<Deliveries>,
}

impl Counted for SinkStats {
    type Counters = SinkCounters;
    fn read(c: &SinkCounters) -> Self {
        SinkStats { sent: load(&c.sent), acknowledged: c.deliveries.acked() }
    }
}

impl Stats for SinkStats {}

/// The shared producer and, with a partitioner, the topic's partition count;
/// an error names the topic.
fn open(config: &SinkConfig, topic: &str) -> Result<(Arc<SharedProducer>, u32), Error> {
    let producer = config.kafka.shared_producer()?;
    let partitions = existing_partition_count(producer.client(), topic, config.flush_timeout)?;
    Ok((producer, partitions))
}

/// A stream of `(key, value)` records out to Kafka, as timely's operators
/// are: a method on the stream (`stream.kafka_sink(..)`).
///
/// ```no_run
/// use timely::dataflow::operators::ToStream;
/// use timely_kafka::connect::sink::{KafkaSink, SinkConfig};
/// use timely_kafka::KafkaLog;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let kafka = KafkaLog::new("127.0.0.1:9092", &[])?;
/// timely_kafka::execute(timely::Config::thread(), move |worker| {
///     let config = SinkConfig::new(kafka.clone());
///     let status = worker.dataflow::<u64, _, _>(|scope| {
///         let counts = vec![("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())];
///         counts.to_stream(scope).container::<Vec<_>>().kafka_sink(config, "counts")
///     });
///     while !status.is_complete() && !status.is_failed() {
///         worker.step();
///     }
///     Ok(())
/// })?;
/// # Ok(())
/// # }
/// ```
pub trait KafkaSink {
    /// Writes every `(key, value)` of the stream to `topic`; returns this
    /// worker's part's [`Status`].
    fn kafka_sink(self, config: SinkConfig, topic: &str) -> Status<SinkStats>;
}

impl<T, K, V> KafkaSink for Stream<'_, T, Vec<(K, V)>>
where
    T: Timestamp,
    K: AsRef<[u8]> + 'static,
    V: AsRef<[u8]> + 'static,
{
    fn kafka_sink(self, config: SinkConfig, topic: &str) -> Status<SinkStats> {
        kafka_sink(self, config, topic)
    }
}

/// Writes every `(key, value)` of `stream` to `topic` ([`KafkaSink`]).
fn kafka_sink<T, K, V>(stream: Stream<'_, T, Vec<(K, V)>>, config: SinkConfig, topic: &str) -> Status<SinkStats>
where
    T: Timestamp,
    K: AsRef<[u8]> + 'static,
    V: AsRef<[u8]> + 'static,
{
    let status = Status::<SinkStats>::default();
    let handle = status.clone();
    let context = format!("kafka sink to topic '{topic}'");
    let opened = open(&config, topic);
    let (producer, partitions) = match opened {
        Ok((producer, partitions)) => (Some(producer), partitions),
        Err(error) => {
            status.fail(&context, error);
            (None, 0)
        }
    };
    let topic = topic.to_string();
    let mut flushed_to = Antichain::from_elem(T::minimum());
    let fail = move |status: &Status<SinkStats>, reason: String| {
        status.fail(&context, Error::kafka(reason));
    };
    // Records waiting in librdkafka's queue for longer than this fail their
    // delivery anyway (message.timeout.ms); a queue full for as long is stuck.
    let queue_timeout = 2 * config.flush_timeout.max(Duration::from_secs(30));
    stream.sink(Pipeline, &format!("KafkaSink({topic})"), move |(input, frontier)| {
        let SinkCounters { sent, deliveries } = status.counters();
        let producer = match &producer {
            Some(producer) if !status.failed_anywhere() => producer,
            // Failed (here or anywhere in the computation): drop the rest.
            _ => {
                input.for_each(|_time, data| data.clear());
                return;
            }
        };
        let mut failed = None;
        input.for_each(|_time, data| {
            for (key, value) in data.drain(..) {
                if failed.is_some() {
                    continue;
                }
                let key = key.as_ref();
                let mut record =
                    BaseRecord::with_opaque_to(&topic, deliveries.clone()).key(key).payload(value.as_ref());
                if let Some(partitioner) = &config.partitioner {
                    record = record.partition(partitioner(key, partitions).min(partitions - 1) as i32);
                }
                match send_record(producer, record, queue_timeout) {
                    Ok(()) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(reason) => failed = Some(reason),
                }
            }
        });
        if let Some(reason) = failed.or_else(|| deliveries.first_error()) {
            return fail(&status, reason);
        }
        if frontier.frontier() != flushed_to.borrow() {
            // Only this sink's records: other writers sharing the producer
            // do not hold it up.
            let sent = sent.load(Ordering::Relaxed);
            if !deliveries.wait_reported(sent, config.flush_timeout) {
                let unacknowledged = sent - deliveries.acked();
                let timeout = config.flush_timeout;
                return fail(&status, format!("{unacknowledged} of {sent} records unacknowledged after {timeout:?}"));
            }
            if let Some(reason) = deliveries.first_error() {
                return fail(&status, reason);
            }
            flushed_to = frontier.frontier().to_owned();
            if flushed_to.is_empty() && !status.failed_anywhere() {
                status.set_complete();
            }
        }
    });
    handle
}
