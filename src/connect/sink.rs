//! `kafka_sink`: a dataflow's `(key, value)` records out to a Kafka topic.
//!
//! Records are produced as they arrive, with backpressure on a full local
//! queue. Whenever the input frontier advances, the sink flushes and checks
//! every delivery report: once the frontier has passed a time, everything
//! at that time is acknowledged by the broker, or the worker stops with the
//! broker's error naming the topic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;
use timely::progress::{Antichain, Timestamp};

use crate::log::kafka::{KafkaLog, CONSUMER_ONLY, PRODUCER_DEFAULTS};

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
    acked: Arc<AtomicU64>,
}

impl SinkHandle {
    /// Records handed to the producer.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Records acknowledged by the broker.
    pub fn acknowledged(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }
}

struct SinkContext {
    acked: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
}

impl ClientContext for SinkContext {}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                if let Ok(mut slot) = self.error.lock() {
                    slot.get_or_insert(format!(
                        "delivery to topic '{}' partition {} failed: {error}",
                        message.topic(),
                        message.partition()
                    ));
                }
            }
        }
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
    let error = Arc::new(Mutex::new(None));
    let context = SinkContext { acked: handle.acked.clone(), error: error.clone() };
    let producer: BaseProducer<SinkContext> = config
        .kafka
        .config(PRODUCER_DEFAULTS, CONSUMER_ONLY)
        .create_with_context(context)
        .unwrap_or_else(|e| panic!("kafka sink: cannot create producer: {e}"));
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
    let check = move |error: &Arc<Mutex<Option<String>>>| {
        if let Some(message) = error.lock().ok().and_then(|e| e.clone()) {
            panic!("kafka sink: {message}");
        }
    };
    stream.sink(Pipeline, &format!("KafkaSink({topic})"), move |(input, frontier)| {
        input.for_each(|_time, data| {
            for (key, value) in data.drain(..) {
                let key = key.as_ref();
                let mut record = BaseRecord::<[u8], [u8]>::to(&topic).key(key).payload(value.as_ref());
                if let Some(partitioner) = &config.partitioner {
                    record = record.partition(partitioner(key, partitions).min(partitions - 1) as i32);
                }
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                            producer.poll(Duration::from_millis(10));
                            check(&error);
                            record = returned;
                        }
                        Err((e, _)) => panic!("kafka sink: topic '{topic}': {e}"),
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        });
        producer.poll(Duration::ZERO);
        check(&error);
        if frontier.frontier() != flushed_to.borrow() {
            if let Err(e) = producer.flush(config.flush_timeout) {
                panic!("kafka sink: topic '{topic}': flush did not complete within {:?}: {e}", config.flush_timeout);
            }
            check(&error);
            flushed_to = frontier.frontier().to_owned();
        }
    });
    handle
}
