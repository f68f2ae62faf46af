//! Producing to one partition, with every acknowledgement checked.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::KafkaLog;
use crate::error::{Error, PartitionId, Result};
use crate::log::PartitionWriter;

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
    pub(super) fn new(log: &KafkaLog, topic: &str, partition: u32) -> Result<Self> {
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
