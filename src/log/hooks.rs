//! What a backend may do beyond storing records, each with a default.
//!
//! The log traits ([`super::LogBackend`], [`super::PartitionWriter`],
//! [`super::PartitionReader`]) are the log itself. A capture with commits
//! and a replay also ask a backend a few questions that only some backends
//! can answer better than "do nothing": whether a commit can be made
//! durable after what it covers, whether every acknowledgement so far is
//! in and in place, whether re-reading is cheaper than keeping records.
//! Those live here, apart, so the contract of a log stays small and a new
//! backend needs none of them (`impl WriterHooks for MyWriter {}`).

use crate::error::Result;

/// Commit and durability hooks of a partition writer.
///
/// A capture with commits (`exactly_once::capture`) calls, for each commit:
/// [`WriterHooks::check_stored`], [`WriterHooks::before_commit`], appends
/// the commit record, `publish`, then [`WriterHooks::commit_point`].
pub trait WriterHooks {
    /// Called just before a commit record is appended. A log that makes
    /// commits durable makes every record appended so far durable here, so
    /// a commit never reaches the disk before the records it covers.
    fn before_commit(&mut self) -> Result<()> {
        Ok(())
    }
    /// Called just after a commit record is appended and published: a log
    /// that makes commits durable makes it durable before returning (the
    /// file log with `sync`).
    fn commit_point(&mut self) -> Result<()> {
        Ok(())
    }
    /// Waits until every record appended so far is acknowledged, and checks
    /// that they are all stored: a capture calls it before each commit
    /// record, since a commit vouches for everything before it. Kafka:
    /// every delivery report in, none failed, at contiguous offsets (an
    /// idempotent producer that times out queued records skips them and
    /// goes on, leaving a gap; another writer's records between them mean
    /// the partition is shared). The file log stores appends in order in
    /// one process, and its write errors surface at append or flush.
    fn check_stored(&mut self) -> Result<()> {
        Ok(())
    }
}

/// What a replay may ask a partition reader beyond reading.
pub trait ReaderHooks {
    /// The end offset as the log's metadata reports it: one round trip, but
    /// some brokers report it short (tansu, after batched produces), so it
    /// is a place to start reading from, never where a partition ends. By
    /// default `None`: the replay asks `end_offset`.
    fn reported_end_offset(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }
    /// Whether re-reading records already read is cheap (a local file in the
    /// page cache) rather than a network round trip and a refetch: replay
    /// then re-reads instead of keeping records in memory.
    fn rereads_are_cheap(&self) -> bool {
        false
    }
    /// The partition's end offset if the reader knows it without a round
    /// trip (Kafka: the high watermark of the last fetch response), for the
    /// lag metric. By default `None`.
    fn cached_end_offset(&mut self) -> Option<u64> {
        None
    }
}

/// What a capture may ask a backend before it writes.
pub trait BackendHooks {
    /// Starts what writers will need, so its start-up overlaps other work
    /// (topic creation) instead of delaying the first write. Kafka: the
    /// process's producer, whose idempotent producer id takes up to 0.5 s
    /// to arrive (librdkafka retries every 500 ms until a broker is up).
    fn prepare_writers(&self) -> Result<()> {
        Ok(())
    }
    /// Refuses settings under which a capture's commits would not hold
    /// (Kafka: a producer without idempotence or `acks=all`).
    fn check_exactly_once(&self) -> Result<()> {
        Ok(())
    }
}

impl WriterHooks for Box<dyn super::PartitionWriter> {
    fn before_commit(&mut self) -> Result<()> {
        (**self).before_commit()
    }
    fn commit_point(&mut self) -> Result<()> {
        (**self).commit_point()
    }
    fn check_stored(&mut self) -> Result<()> {
        (**self).check_stored()
    }
}

impl ReaderHooks for Box<dyn super::PartitionReader> {
    fn reported_end_offset(&mut self) -> Result<Option<u64>> {
        (**self).reported_end_offset()
    }
    fn rereads_are_cheap(&self) -> bool {
        (**self).rereads_are_cheap()
    }
    fn cached_end_offset(&mut self) -> Option<u64> {
        (**self).cached_end_offset()
    }
}
