//! `kafka_sink`: a dataflow's `(key, value)` records out to a Kafka topic.
//!
//! Records are produced as they arrive, with backpressure on a full local
//! queue. Whenever the input frontier advances, the sink waits for the
//! delivery reports of its records and checks every one: once the frontier
//! has passed a time, everything at that time is acknowledged by the broker,
//! or the worker stops with the broker's error naming the topic.
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

use crate::log::kafka::{send_record, Deliveries, KafkaLog};

/// Chooses a partition from a record's key and the topic's partition count.
pub type Partitioner = Arc<dyn Fn(&[u8], u32) -> u32 + Send + Sync>;

/// How a [`kafka_sink`] writes.
#[derive(Clone)]
pub struct SinkConfig {
    /// Brokers and client properties (`-X`).
    pub kafka: KafkaLog,
    /// `None`: Kafka's default partitioner (by key hash). `Some`: this one.
    pub partitioner: Option<Partitioner>,
    /// Bound on each flush.
    pub flush_timeout: Duration,
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
}

/// Counters of a running sink.
#[derive(Clone, Default)]
pub struct SinkHandle {
    sent: Arc<AtomicU64>,
    deliveries: Arc<Deliveries>,
}

impl SinkHandle {
    /// Records handed to the producer.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Records acknowledged by the broker.
    pub fn acknowledged(&self) -> u64 {
        self.deliveries.acked()
    }
}

/// Writes every `(key, value)` of `stream` to `topic`.
pub fn kafka_sink<T, K, V>(stream: Stream<'_, T, Vec<(K, V)>>, config: SinkConfig, topic: &str) -> SinkHandle
where
    T: Timestamp,
    K: AsRef<[u8]> + 'static,
    V: AsRef<[u8]> + 'static,
{
    let handle = SinkHandle::default();
    let producer = config.kafka.shared_producer().unwrap_or_else(|e| panic!("kafka sink: {e}"));
    let deliveries = handle.deliveries.clone();
    let partitions = match &config.partitioner {
        None => 0,
        Some(_) => producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .ok()
            .and_then(|m| m.topics().iter().find(|t| t.name() == topic).map(|t| t.partitions().len() as u32))
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("kafka sink: topic '{topic}' does not exist")),
    };
    let topic = topic.to_string();
    let sent = handle.sent.clone();
    let mut flushed_to = Antichain::from_elem(T::minimum());
    let check = move |deliveries: &Deliveries| {
        if let Some(message) = deliveries.first_error() {
            panic!("kafka sink: {message}");
        }
    };
    // Records waiting in librdkafka's queue for longer than this fail their
    // delivery anyway (message.timeout.ms); a queue full for as long is stuck.
    let queue_timeout = 2 * config.flush_timeout.max(Duration::from_secs(30));
    stream.sink(Pipeline, &format!("KafkaSink({topic})"), move |(input, frontier)| {
        input.for_each(|_time, data| {
            for (key, value) in data.drain(..) {
                let key = key.as_ref();
                let mut record =
                    BaseRecord::with_opaque_to(&topic, deliveries.clone()).key(key).payload(value.as_ref());
                if let Some(partitioner) = &config.partitioner {
                    record = record.partition(partitioner(key, partitions).min(partitions - 1) as i32);
                }
                if let Err(reason) = send_record(&producer, record, queue_timeout) {
                    panic!("kafka sink: topic '{topic}': {reason}");
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        });
        check(&deliveries);
        if frontier.frontier() != flushed_to.borrow() {
            // Only this sink's records: other writers sharing the producer
            // do not hold it up.
            let sent = sent.load(Ordering::Relaxed);
            if !deliveries.wait_reported(sent, config.flush_timeout) {
                panic!(
                    "kafka sink: topic '{topic}': {} of {sent} records unacknowledged after {:?}",
                    sent - deliveries.acked(),
                    config.flush_timeout
                );
            }
            check(&deliveries);
            flushed_to = frontier.frontier().to_owned();
        }
    });
    handle
}
