//! A third backend, written from `src/log/mod.rs` alone: every partition a
//! vector of records in memory. Test-only; it shows the log traits are the
//! whole contract (the conformance suite and an exactly-once capture with
//! crashes and resumes run on it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timely_kafka::error::TopicPartition;
use timely_kafka::log::{BackendHooks, LogBackend, PartitionReader, PartitionWriter, Record, TopicInfo};
use timely_kafka::log::{ReaderHooks, WriterHooks};
use timely_kafka::{Error, Result};

type Partition = Arc<Mutex<Vec<Vec<u8>>>>;

/// Topics of in-memory partitions; clones share them.
#[derive(Clone, Default)]
pub struct MemoryLog(Arc<Mutex<HashMap<String, Vec<Partition>>>>);

impl MemoryLog {
    fn partition(&self, topic: &str, partition: u32) -> Result<Partition> {
        let topics = self.0.lock().unwrap();
        let partitions = topics.get(topic).ok_or_else(|| Error::MissingTopic(topic.to_string()))?;
        let found = partitions.get(partition as usize).ok_or_else(|| Error::TooFewPartitions {
            topic: topic.to_string(),
            actual: partitions.len() as u32,
            wanted: partition + 1,
        });
        found.cloned()
    }
}

impl LogBackend for MemoryLog {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn topic_info(&self, topic: &str) -> Result<Option<TopicInfo>> {
        let topics = self.0.lock().unwrap();
        Ok(topics.get(topic).map(|partitions| TopicInfo {
            partitions: partitions.len() as u32,
            has_data: partitions.iter().any(|p| !p.lock().unwrap().is_empty()),
        }))
    }
    fn create_topic(&self, topic: &str, partitions: u32, overwrite: bool) -> Result<()> {
        if partitions == 0 {
            return Err(Error::Config(format!("topic '{topic}': partition count must be at least 1")));
        }
        match self.topic_info(topic)? {
            Some(info) if !overwrite && info.has_data => Err(Error::TopicNotEmpty(topic.to_string())),
            Some(info) if !overwrite && info.partitions < partitions => {
                Err(Error::TooFewPartitions { topic: topic.to_string(), actual: info.partitions, wanted: partitions })
            }
            Some(_) if !overwrite => Ok(()),
            _ => {
                let fresh = (0..partitions).map(|_| Partition::default()).collect();
                self.0.lock().unwrap().insert(topic.to_string(), fresh);
                Ok(())
            }
        }
    }
    fn writer(&self, topic: &str, partition: u32) -> Result<Box<dyn PartitionWriter>> {
        let records = self.partition(topic, partition)?;
        Ok(Box::new(MemoryWriter { id: TopicPartition::new(topic, partition), records }))
    }
    fn reader(&self, topic: &str, partition: u32, offset: u64) -> Result<Box<dyn PartitionReader>> {
        let records = self.partition(topic, partition)?;
        Ok(Box::new(MemoryReader {
            id: TopicPartition::new(topic, partition),
            records,
            next: offset,
            read: Vec::new(),
        }))
    }
}

struct MemoryWriter {
    id: TopicPartition,
    records: Partition,
}

impl PartitionWriter for MemoryWriter {
    fn partition(&self) -> &TopicPartition {
        &self.id
    }
    fn append(&mut self, record: &[u8]) -> Result<()> {
        self.records.lock().unwrap().push(record.to_vec());
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

struct MemoryReader {
    id: TopicPartition,
    records: Partition,
    next: u64,
    read: Vec<u8>,
}

impl PartitionReader for MemoryReader {
    fn partition(&self) -> &TopicPartition {
        &self.id
    }
    fn poll(&mut self, timeout: Duration) -> Result<Option<Record<'_>>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(record) = self.records.lock().unwrap().get(self.next as usize) {
                self.read.clone_from(record);
                break;
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.next += 1;
        Ok(Some(Record { offset: self.next - 1, payload: &self.read }))
    }
    fn poll_stored(&mut self, _timeout: Duration) -> Result<Option<Record<'_>>> {
        self.poll(Duration::ZERO)
    }
    fn end_offset(&mut self) -> Result<u64> {
        Ok(self.records.lock().unwrap().len() as u64)
    }
    fn seek(&mut self, offset: u64) -> Result<()> {
        self.next = offset;
        Ok(())
    }
}

impl BackendHooks for MemoryLog {}
impl WriterHooks for MemoryWriter {}
impl ReaderHooks for MemoryReader {}
