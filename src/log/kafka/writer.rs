//! Producing to one partition through the shared producer, with every
//! acknowledgement checked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::BaseRecord;

use super::producer::{send_record, Deliveries, SharedProducer};
use super::watermarks::watermarks;
use super::KafkaLog;
use crate::error::{Error, PartitionId, Result};
use crate::log::PartitionWriter;

/// Produces to one partition; checks every acknowledgement.
pub struct KafkaWriter {
    id: PartitionId,
    producer: Arc<SharedProducer>,
    deliveries: Arc<Deliveries>,
    sent: u64,
    timeout: Duration,
    delivery_wait: Duration,
    max_record: usize,
}

impl KafkaWriter {
    pub(super) fn new(log: &KafkaLog, topic: &str, partition: u32) -> Result<Self> {
        Ok(KafkaWriter {
            id: PartitionId::new(topic, partition),
            producer: log.shared_producer()?,
            deliveries: Arc::new(Deliveries::default()),
            sent: 0,
            timeout: log.timeout,
            delivery_wait: log.delivery_wait(),
            max_record: log.max_record(),
        })
    }

    fn check_deliveries(&self) -> Result<()> {
        match self.deliveries.first_error() {
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
    /// interleaving records into the partition. The bookkeeping is this
    /// writer's own even though the producer is shared: each record carries
    /// its writer's [`Deliveries`] to its delivery report.
    fn check_offsets(&self) -> Result<()> {
        let Some((with_offset, min, max)) = self.deliveries.offsets() else { return Ok(()) };
        let span = (max - min + 1) as u64;
        let sent = self.sent;
        let complete = match span.cmp(&sent) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Less => self.stored_since(min)? == sent,
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

    /// How many records the partition holds from offset `min` on. Right
    /// after a leader election the new leader's high watermark can lag what
    /// it stored and acknowledged (it advances as followers fetch): seen on
    /// a 3-node cluster in a rolling restart, an end one short of a batch
    /// acknowledged as a duplicate. The end only grows, so a short one is
    /// asked again until it covers the records sent or the timeout passes.
    fn stored_since(&self, min: i64) -> Result<u64> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let (_, end) =
                watermarks(self.producer.client(), &self.id.topic, self.id.partition as i32, self.timeout).map_err(
                    |e| Error::Write { at: self.id.clone(), reason: format!("cannot read the end offset: {e}") },
                )?;
            let stored = (end - min).max(0) as u64;
            if stored >= self.sent || Instant::now() >= deadline {
                return Ok(stored);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn unacknowledged(&self) -> u64 {
        self.sent.saturating_sub(self.deliveries.acked())
    }
}

impl PartitionWriter for KafkaWriter {
    fn partition(&self) -> &PartitionId {
        &self.id
    }

    fn append(&mut self, record: &[u8]) -> Result<()> {
        let pending = BaseRecord::<(), [u8], _>::with_opaque_to(&self.id.topic, self.deliveries.clone())
            .partition(self.id.partition as i32)
            .payload(record);
        send_record(&self.producer, pending, 2 * self.timeout)
            .map_err(|reason| Error::Write { at: self.id.clone(), reason })?;
        self.sent += 1;
        if self.sent.is_multiple_of(1024) {
            self.check_deliveries()?;
        }
        Ok(())
    }

    /// Waits (at most the delivery bound, `message.timeout.ms`, plus a
    /// margin) until every record this writer sent has a delivery report — only this writer's records, so a writer
    /// does not wait for the others sharing the producer.
    fn flush(&mut self) -> Result<()> {
        let reported = self.deliveries.wait_reported(self.sent, self.delivery_wait);
        self.check_deliveries()?;
        if !reported || self.unacknowledged() > 0 {
            return Err(Error::Write {
                at: self.id.clone(),
                reason: format!(
                    "{} of {} records still unacknowledged after {:?}",
                    self.unacknowledged(),
                    self.sent,
                    self.delivery_wait
                ),
            });
        }
        self.check_offsets()
    }

    fn publish(&mut self) -> Result<()> {
        self.check_deliveries()
    }

    /// Everything [`PartitionWriter::flush`] checks: every record reported,
    /// none failed, at contiguous offsets.
    fn check_stored(&mut self) -> Result<()> {
        self.flush()
    }

    fn max_record_bytes(&self) -> usize {
        self.max_record
    }
}
