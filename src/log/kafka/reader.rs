//! Reading one partition from an explicit offset.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaLog;
use crate::error::{Error, PartitionId, Result};
use crate::log::{PartitionReader, Record};

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
    pub(super) fn new(log: &KafkaLog, topic: &str, partition: u32, offset: u64) -> Result<Self> {
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
