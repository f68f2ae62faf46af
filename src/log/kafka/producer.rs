//! One librdkafka producer per process, shared by every writer and sink.
//!
//! A librdkafka producer is a whole client: a local queue, batching, a
//! thread per broker. One per capturing worker multiplies all of that, and
//! each such queue may hold `queue.buffering.max.kbytes` (librdkafka's default
//! is 1 GB): a fast capture into a slow broker held gigabytes. Measured on
//! tansu, one plain client sending every partition's records was also faster
//! than one client per partition. So a [`KafkaLog`] and its clones create
//! one producer, lazily, on the first writer or sink, and everything writing
//! through them shares it: its bounded queue is the backpressure of the
//! whole process.
//!
//! Sharing the client must not blur the per-partition checks. Each writer
//! (and each sink) owns a [`Deliveries`] and passes it along with every
//! record as librdkafka's per-message opaque, so every delivery report lands
//! in the bookkeeping of the writer that sent the record; a writer waits for
//! *its* records, not for the whole process to be idle. Delivery reports are
//! served by the producer's own polling thread ([`PolledProducer`]).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::polled::PolledProducer;
use super::KafkaLog;
use crate::error::{Error, Result};

/// The process's producer: a librdkafka producer and the thread serving its
/// delivery reports.
pub(crate) struct SharedProducer {
    producer: PolledProducer<DeliveryContext>,
}

/// A record librdkafka did not queue, and why.
type Rejected<'a, K> = (KafkaError, BaseRecord<'a, K, [u8], Arc<Deliveries>>);

impl SharedProducer {
    fn new(producer: BaseProducer<DeliveryContext>) -> Result<Self> {
        let producer = PolledProducer::new(producer, "timely-kafka producer")
            .map_err(|e| Error::kafka_from("cannot start the producer's polling thread", &e))?;
        Ok(SharedProducer { producer })
    }

    /// The librdkafka client (metadata questions).
    pub(crate) fn client(&self) -> &rdkafka::client::Client<DeliveryContext> {
        self.producer.client()
    }

    /// Queues `record` (see [`BaseProducer::send`]).
    #[allow(clippy::result_large_err)] // rdkafka's own signature
    pub(crate) fn send<'a, K: rdkafka::message::ToBytes + ?Sized>(
        &self,
        record: BaseRecord<'a, K, [u8], Arc<Deliveries>>,
    ) -> std::result::Result<(), Rejected<'a, K>> {
        self.producer.send(record)
    }
}

/// How long a waiting writer sleeps between looks at its delivery counters.
const WAIT_STEP: Duration = Duration::from_millis(1);

/// Delivery bookkeeping of one writer or sink, filled by librdkafka's
/// delivery reports for the records it sent.
pub(crate) struct Deliveries {
    acked: AtomicU64,
    failed: AtomicU64,
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
            failed: AtomicU64::new(0),
            with_offset: AtomicU64::new(0),
            min_offset: AtomicI64::new(i64::MAX),
            max_offset: AtomicI64::new(-1),
            first_error: Mutex::new(None),
        }
    }
}

impl Deliveries {
    /// Records acknowledged by the broker.
    pub(crate) fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Records with a delivery report, acknowledged or failed.
    pub(crate) fn reported(&self) -> u64 {
        self.acked() + self.failed.load(Ordering::Relaxed)
    }

    /// The first delivery failure, if any.
    pub(crate) fn first_error(&self) -> Option<String> {
        self.first_error.lock().map(|e| e.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// `(count, min, max)` of the acknowledged offsets since the last call,
    /// if any carried one, and starts counting afresh: called when
    /// every record sent has its report, so none is lost to the reset.
    pub(crate) fn take_offsets(&self) -> Option<(u64, i64, i64)> {
        let count = self.with_offset.swap(0, Ordering::Relaxed);
        let min = self.min_offset.swap(i64::MAX, Ordering::Relaxed);
        let max = self.max_offset.swap(-1, Ordering::Relaxed);
        (count > 0).then_some((count, min, max))
    }

    fn record(&self, result: &DeliveryResult<'_>) {
        match result {
            Ok(message) => {
                if message.offset() >= 0 {
                    self.with_offset.fetch_add(1, Ordering::Relaxed);
                    self.min_offset.fetch_min(message.offset(), Ordering::Relaxed);
                    self.max_offset.fetch_max(message.offset(), Ordering::Relaxed);
                }
                self.acked.fetch_add(1, Ordering::Release);
            }
            Err((error, message)) => {
                let reason =
                    format!("delivery failed: {error} (topic '{}' partition {})", message.topic(), message.partition());
                if let Ok(mut slot) = self.first_error.lock() {
                    slot.get_or_insert(reason);
                }
                self.failed.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// Waits until `sent` records have a delivery report or `timeout`
    /// passes; `true` if they all have one.
    pub(crate) fn wait_reported(&self, sent: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.reported() < sent {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(WAIT_STEP);
        }
        true
    }
}

/// Routes each delivery report to the [`Deliveries`] that sent the record.
pub(crate) struct DeliveryContext;

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<Deliveries>;

    fn delivery(&self, result: &DeliveryResult<'_>, deliveries: Arc<Deliveries>) {
        deliveries.record(result);
    }
}

/// Sends `record` through the shared producer, waiting while its local
/// queue is full (backpressure) for at most `timeout`; fails early on the
/// first delivery failure of `deliveries`. The error is a reason to wrap.
pub(crate) fn send_record<K: rdkafka::message::ToBytes + ?Sized>(
    producer: &SharedProducer,
    mut record: BaseRecord<'_, K, [u8], Arc<Deliveries>>,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let mut waited_since: Option<Instant> = None;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                if let Some(error) = returned.delivery_opaque.first_error() {
                    return Err(error);
                }
                let since = *waited_since.get_or_insert_with(Instant::now);
                if since.elapsed() > timeout {
                    return Err(format!(
                        "the local queue stayed full for {:?} ({} of this writer's records acknowledged)",
                        since.elapsed(),
                        returned.delivery_opaque.acked()
                    ));
                }
                std::thread::sleep(WAIT_STEP);
                record = returned;
            }
            Err((error, _)) => return Err(error.to_string()),
        }
    }
}

impl KafkaLog {
    /// The producer shared by every writer and sink of this value and its
    /// clones, created on first use.
    pub(crate) fn shared_producer(&self) -> Result<Arc<SharedProducer>> {
        let mut slot = self.producer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(producer) = slot.as_ref() {
            return Ok(producer.clone());
        }
        let producer: BaseProducer<DeliveryContext> = self
            .producer_config()
            .create_with_context(DeliveryContext)
            .map_err(|e| Error::kafka_from("cannot create producer", &e))?;
        let producer = Arc::new(SharedProducer::new(producer)?);
        *slot = Some(producer.clone());
        Ok(producer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_of_a_log_share_one_producer() {
        // Creating a producer does not connect: no broker is needed.
        let log = KafkaLog::unchecked("127.0.0.1:1", &[]).unwrap();
        let clone = log.clone();
        let first = log.shared_producer().unwrap();
        assert!(Arc::ptr_eq(&first, &clone.shared_producer().unwrap()));
        assert!(Arc::ptr_eq(&first, &log.shared_producer().unwrap()));
        let other = KafkaLog::unchecked("127.0.0.1:1", &[]).unwrap();
        assert!(!Arc::ptr_eq(&first, &other.shared_producer().unwrap()));
    }

    #[test]
    fn waiting_for_no_records_returns_at_once() {
        let deliveries = Deliveries::default();
        assert!(deliveries.wait_reported(0, Duration::ZERO));
        assert!(!deliveries.wait_reported(1, Duration::from_millis(5)));
        assert_eq!((deliveries.acked(), deliveries.reported(), deliveries.take_offsets()), (0, 0, None));
    }
}
