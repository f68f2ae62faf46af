//! The partition log: what capture and replay need from storage, and no more.
//!
//! This layer knows nothing of timely or of frames: records are opaque bytes.
//! The stream protocol builds on it; it uses only the crate's error types.
//!
//! A *topic* has a fixed number of *partitions*; each partition is an
//! append-only sequence of opaque records addressed by a dense offset. That is
//! Kafka's model, and it is small enough that an embedded file log
//! ([`file`](mod@file)) and Kafka itself ([`kafka`]) implement it the same way, so
//! [`crate::EventProducer`] and [`crate::EventConsumer`] never know which one
//! they are talking to.
//!
//! Writers batch: `append` may only buffer, `flush` returns once everything
//! appended is durable (file) or acknowledged (Kafka), or fails. Readers poll
//! with a timeout and return `Ok(None)` when nothing new arrived in time; they
//! never block forever.
//!
//! The three traits here are the whole log: topics ([`LogBackend`]),
//! append ([`PartitionWriter`]), read, tail and ends ([`PartitionReader`]).
//! What a backend *may* do beyond that — make commits durable, vouch for
//! acknowledgements, tune a replay, prepare a client — lives in [`hooks`],
//! where every method has a default: a new backend writes
//! `impl WriterHooks for MyWriter {}` (and likewise for its reader and
//! backend) and is complete. `tests/log_conformance.rs` runs the contract
//! on such a backend, an in-memory log of a few dozen lines, as well as on
//! the two below.

pub mod file;
pub mod hooks;
pub mod kafka;

use std::time::Duration;

pub use hooks::{BackendHooks, ReaderHooks, WriterHooks};

use crate::error::{Result, TopicPartition};

/// One record read from a partition. The payload borrows the reader's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// Offset of the record in its partition.
    pub offset: u64,
    /// The record's bytes.
    pub payload: &'a [u8],
}

/// Appends records to one partition. The commit and durability hooks a
/// capture also calls are in [`WriterHooks`].
pub trait PartitionWriter: WriterHooks + Send + Sync {
    /// The partition written.
    fn partition(&self) -> &TopicPartition;
    /// Appends a record; it may stay buffered until [`PartitionWriter::flush`].
    fn append(&mut self, record: &[u8]) -> Result<()>;
    /// Makes every appended record durable or acknowledged, or fails.
    fn flush(&mut self) -> Result<()>;
    /// Makes appended records visible to readers soon, without waiting for
    /// durability. Called whenever the captured stream's frontier advances,
    /// and after each commit record.
    fn publish(&mut self) -> Result<()> {
        Ok(())
    }
    /// The largest record this partition accepts; larger events are chunked.
    fn max_record_bytes(&self) -> usize {
        usize::MAX
    }
}

/// Reads one partition in offset order. What a replay may ask beyond
/// reading is in [`ReaderHooks`].
pub trait PartitionReader: ReaderHooks + Send + Sync {
    /// The partition read.
    fn partition(&self) -> &TopicPartition;
    /// The next record, waiting at most `timeout`; `Ok(None)` if none arrived.
    fn poll(&mut self, timeout: Duration) -> Result<Option<Record<'_>>>;
    /// The next record already stored, waiting at most `timeout` for it to
    /// reach this reader; `Ok(None)` at the end of what is stored, without
    /// waiting for new appends (a file reader answers at once; a Kafka
    /// reader at the end-of-partition event).
    fn poll_stored(&mut self, timeout: Duration) -> Result<Option<Record<'_>>> {
        self.poll(timeout)
    }
    /// Offset of the first record still stored in the partition, if known.
    ///
    /// Lets replay tell "the stream's start was deleted by retention" apart
    /// from "this is not a stream".
    fn first_available_offset(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }
    /// The offset the next appended record will get: one past the last
    /// record stored now.
    fn end_offset(&mut self) -> Result<u64>;
    /// Moves the reader so the next record polled is the one at `offset`.
    fn seek(&mut self, offset: u64) -> Result<()>;
}

/// Metadata about a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// Number of partitions.
    pub partitions: u32,
    /// Whether any partition holds a record.
    pub has_data: bool,
}

/// A log backend: topics, and writers and readers for their partitions.
/// What capture asks of a backend beyond that is in [`BackendHooks`].
pub trait LogBackend: BackendHooks + Send + Sync {
    /// Short name for messages ("file", "kafka").
    fn name(&self) -> &'static str;
    /// Describes `topic`, or `Ok(None)` if it does not exist.
    fn topic_info(&self, topic: &str) -> Result<Option<TopicInfo>>;
    /// The partition count of `topic`, or `Ok(None)` if it does not exist:
    /// [`LogBackend::topic_info`] without looking for data (Kafka: one
    /// metadata request instead of one more per partition).
    fn partitions(&self, topic: &str) -> Result<Option<u32>> {
        Ok(self.topic_info(topic)?.map(|info| info.partitions))
    }
    /// Creates `topic` with `partitions` partitions. Every backend keeps
    /// the same contract (`tests/log_conformance.rs` checks it):
    ///
    /// - a missing topic is created with exactly `partitions` partitions;
    /// - with `overwrite`, an existing topic is deleted and created anew with
    ///   exactly `partitions` partitions, whatever it held;
    /// - without it, an existing topic is never changed: kept when it is
    ///   empty and has at least `partitions` partitions,
    ///   [`crate::Error::TopicNotEmpty`] when it holds data, and
    ///   [`crate::Error::TooFewPartitions`] when it is empty but smaller.
    fn create_topic(&self, topic: &str, partitions: u32, overwrite: bool) -> Result<()>;
    /// Opens the writer of one partition.
    fn writer(&self, topic: &str, partition: u32) -> Result<Box<dyn PartitionWriter>>;
    /// Opens a reader of one partition starting at `offset` (0 = the beginning).
    fn reader(&self, topic: &str, partition: u32, offset: u64) -> Result<Box<dyn PartitionReader>>;
}

impl PartitionWriter for Box<dyn PartitionWriter> {
    fn partition(&self) -> &TopicPartition {
        (**self).partition()
    }
    fn append(&mut self, record: &[u8]) -> Result<()> {
        (**self).append(record)
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
    fn publish(&mut self) -> Result<()> {
        (**self).publish()
    }
    fn max_record_bytes(&self) -> usize {
        (**self).max_record_bytes()
    }
}

impl PartitionReader for Box<dyn PartitionReader> {
    fn partition(&self) -> &TopicPartition {
        (**self).partition()
    }
    fn poll(&mut self, timeout: Duration) -> Result<Option<Record<'_>>> {
        (**self).poll(timeout)
    }
    fn poll_stored(&mut self, timeout: Duration) -> Result<Option<Record<'_>>> {
        (**self).poll_stored(timeout)
    }
    fn first_available_offset(&mut self) -> Result<Option<u64>> {
        (**self).first_available_offset()
    }
    fn end_offset(&mut self) -> Result<u64> {
        (**self).end_offset()
    }
    fn seek(&mut self, offset: u64) -> Result<()> {
        (**self).seek(offset)
    }
}
