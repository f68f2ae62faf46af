//! The embedded file log: Kafka's on-disk shape without a broker.
//!
//! ```text
//! <data-dir>/<topic>/topic.json                  partitions, codec, created-at
//! <data-dir>/<topic>/<partition>/writer.lock     held (flock) by the one writer
//! <data-dir>/<topic>/<partition>/00000000000000000000.log   segment, named by
//! <data-dir>/<topic>/<partition>/00000000000001048576.log   its first offset
//! ```
//!
//! A segment is a sequence of records `[len: u32 LE][crc32c(payload): u32 LE][payload]`.
//! Offsets are implicit: a segment's base offset plus the record's position.
//! Segments roll at a configurable size so old data can be removed a file at a
//! time, as in Kafka.
//!
//! # Torn tails and corruption
//!
//! A writer appends through a 1 MiB buffer, so a process that dies leaves a
//! prefix of what it appended: its last record may be cut short (a partial
//! header, or a header whose length runs past the end of the file), but
//! every record before it is whole. A power failure can also leave zeros
//! where the last pages not yet on disk were (some filesystems extend a file
//! before its data reach the disk). Hence the rule, applied from the first
//! record that is not whole and valid:
//!
//! - It is a **torn tail** when no byte from that record's last byte on
//!   (its header's last byte, if its length is impossible) is non-zero: the
//!   file ends before the record does, or zeros lasting to the end of the
//!   file cover its end. Readers never deliver it; they stop there and wait.
//!   The next writer cuts it when it opens the partition. Only the last
//!   segment can end in one: a roll writes a segment out before it creates
//!   the next.
//! - Anything else is **corruption**: a bad checksum or an impossible length
//!   followed by any non-zero byte (a flipped byte mid-segment, a corrupt
//!   stream header, a whole last record whose last byte is wrong), or a
//!   segment that ends inside a record with another segment after it.
//!   Readers fail and the writer refuses to open, naming topic, partition
//!   and offset; nothing is deleted.
//!
//! The file log stores no empty records, so zeros never read as records. The
//! checksum covers the payload only, which leaves two cases the rule cannot
//! tell from a crash, and cuts: a corrupt length field pointing past the end
//! of the file, and a flipped byte in the very last record when that record
//! ends in zero bytes.
//!
//! A reader that follows a partition across its writer's crash may hold the
//! first bytes of the torn tail when the next writer cuts them and appends
//! new records in their place: it notices (the file got shorter, or its
//! bytes changed under what it buffered) and reads on from the first record
//! it has not delivered, which the cut never reaches.
//!
//! # Durability (`sync`)
//!
//! By default a flushed record survives a crash of the process (it is in the
//! page cache) but not of the machine. With `sync=true`:
//!
//! - every commit of an exactly-once capture is on disk before the capture
//!   counts it ([`crate::status::CaptureStats::commits`]): everything before it is
//!   fsynced, then the commit record is written and fsynced, so no commit
//!   reaches the disk without the records it covers;
//! - every flush fsyncs: the end of a stream (its final record, or final
//!   commit), a resume's epoch record, [`crate::EventProducer::finish`], and
//!   the segment written out before a roll; creating a segment or a topic,
//!   and cutting a torn tail, also fsync the directories involved.
//!
//! It does not cover records between commits: they are written (readers see
//! them) at every frontier change without an fsync, so a plain capture is
//! durable only once its stream ends, and a power failure can take back
//! records a reader has seen, including a commit whose fsync was under way
//! (a reader sees a record once it is written, before its fsync returns).

mod reader;
mod segment;
mod writer;

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{BackendHooks, LogBackend, PartitionReader, PartitionWriter, TopicInfo};
use crate::error::{Error, Result, TopicPartition};
use segment::{lock_partition, segment_name, segments};

pub use reader::FileReader;
pub use segment::MAX_RECORD_BYTES;
pub use writer::FileWriter;

/// Default segment size before rolling to a new file.
pub const DEFAULT_SEGMENT_BYTES: u64 = 256 << 20;
const METADATA_FILE: &str = "topic.json";

/// The file-log backend rooted at a data directory.
#[derive(Clone, Debug)]
pub struct FileLog {
    root: PathBuf,
    segment_bytes: u64,
    sync: bool,
}

/// Contents of `topic.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TopicMetadata {
    partitions: u32,
    created_at_unix_ms: u128,
}

impl FileLog {
    /// A file log under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileLog { root: root.into(), segment_bytes: DEFAULT_SEGMENT_BYTES, sync: false }
    }

    /// Applies `key=value` properties: `segment.bytes` and `sync` (`true` to
    /// fsync every commit and flush, see the [module doc](self); by default
    /// flushed data survives a process crash but not a power failure).
    pub fn with_properties(mut self, properties: &[(String, String)]) -> Result<Self> {
        for (key, value) in properties {
            match key.as_str() {
                "segment.bytes" => {
                    self.segment_bytes = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        Error::Config(format!("segment.bytes: expected a positive integer, got '{value}'"))
                    })?
                }
                "sync" => {
                    self.sync = value
                        .parse()
                        .map_err(|_| Error::Config(format!("sync: expected true or false, got '{value}'")))?
                }
                other => {
                    return Err(Error::Config(format!(
                        "unknown file-log property '{other}' (known: segment.bytes, sync)"
                    )))
                }
            }
        }
        Ok(self)
    }

    /// Sets the segment size.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(1);
        self
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn topic_dir(&self, topic: &str) -> Result<PathBuf> {
        if topic.is_empty()
            || topic.len() > 249
            || !topic.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            || topic == "."
            || topic == ".."
        {
            return Err(Error::Config(format!(
                "invalid topic name '{topic}': use 1-249 characters from [a-zA-Z0-9._-]"
            )));
        }
        Ok(self.root.join(topic))
    }

    fn partition_dir(&self, topic: &str, partition: u32) -> Result<PathBuf> {
        Ok(self.topic_dir(topic)?.join(partition.to_string()))
    }

    fn read_metadata(&self, topic: &str) -> Result<Option<TopicMetadata>> {
        let path = self.topic_dir(topic)?.join(METADATA_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Config(format!("{}: unreadable topic metadata: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn write_metadata(&self, topic: &str, metadata: &TopicMetadata) -> Result<()> {
        let dir = self.topic_dir(topic)?;
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let tmp = dir.join(format!("{METADATA_FILE}.tmp.{}", std::process::id()));
        let json = serde_json::to_vec_pretty(metadata).expect("metadata serializes");
        fs::write(&tmp, json).map_err(|e| Error::io(&tmp, e))?;
        if self.sync {
            File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
        }
        let path = dir.join(METADATA_FILE);
        fs::rename(&tmp, &path).map_err(|e| Error::io(path, e))
    }

    /// With `sync`: fsyncs the directories a new topic added entries to.
    fn sync_topic_dirs(&self, topic: &str, partitions: u32) -> Result<()> {
        if !self.sync {
            return Ok(());
        }
        let mut dirs = vec![self.root.clone(), self.topic_dir(topic)?];
        for partition in 0..partitions {
            dirs.push(self.partition_dir(topic, partition)?);
        }
        for dir in dirs {
            File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(&dir, e))?;
        }
        Ok(())
    }

    /// Deletes every segment of a partition, holding its writer lock meanwhile.
    fn clear_partition(&self, topic: &str, partition: u32) -> Result<()> {
        let dir = self.partition_dir(topic, partition)?;
        if !dir.exists() {
            return Ok(());
        }
        let _lock = lock_partition(&dir, TopicPartition::new(topic, partition))?;
        for (_, path) in segments(&dir)? {
            fs::remove_file(&path).map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    }

    fn partition_has_data(&self, topic: &str, partition: u32) -> Result<bool> {
        let dir = self.partition_dir(topic, partition)?;
        if !dir.exists() {
            return Ok(false);
        }
        for (_, path) in segments(&dir)? {
            let len = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
            if len > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn create(&self, topic: &str, partitions: u32, overwrite: bool) -> Result<()> {
        if partitions == 0 {
            return Err(Error::Config(format!("topic '{topic}': partition count must be at least 1")));
        }
        if let Some(existing) = self.read_metadata(topic)? {
            let mut has_data = false;
            for partition in 0..existing.partitions {
                has_data |= self.partition_has_data(topic, partition)?;
            }
            // Kafka's contract (see `LogBackend::create_topic`): without
            // `overwrite` an existing topic is kept as it is or refused,
            // never resized; with it, the topic is made anew.
            if !overwrite {
                if has_data {
                    return Err(Error::TopicNotEmpty(topic.to_string()));
                }
                if existing.partitions < partitions {
                    return Err(Error::TooFewPartitions {
                        topic: topic.to_string(),
                        actual: existing.partitions,
                        wanted: partitions,
                    });
                }
                return Ok(());
            }
            for partition in 0..existing.partitions {
                self.clear_partition(topic, partition)?;
            }
            for partition in partitions..existing.partitions {
                let dir = self.partition_dir(topic, partition)?;
                fs::remove_dir_all(&dir).map_err(|e| Error::io(dir, e))?;
            }
        }
        let metadata = TopicMetadata {
            partitions,
            created_at_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
        };
        self.write_metadata(topic, &metadata)?;
        for partition in 0..partitions {
            let dir = self.partition_dir(topic, partition)?;
            fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            if segments(&dir)?.is_empty() {
                let first = dir.join(segment_name(0));
                File::create(&first).map_err(|e| Error::io(first, e))?;
            }
        }
        self.sync_topic_dirs(topic, partitions)
    }

    /// Opens the writer of a partition with its concrete type.
    pub fn open_writer(&self, topic: &str, partition: u32) -> Result<FileWriter> {
        self.require_partition(topic, partition)?;
        FileWriter::open(
            self.partition_dir(topic, partition)?,
            TopicPartition::new(topic, partition),
            self.segment_bytes,
            self.sync,
        )
    }

    /// Opens a reader of a partition with its concrete type.
    pub fn open_reader(&self, topic: &str, partition: u32, offset: u64) -> Result<FileReader> {
        self.require_partition(topic, partition)?;
        FileReader::open(self.partition_dir(topic, partition)?, TopicPartition::new(topic, partition), offset)
    }

    fn require_partition(&self, topic: &str, partition: u32) -> Result<()> {
        let metadata = self.read_metadata(topic)?.ok_or_else(|| Error::MissingTopic(topic.to_string()))?;
        if partition >= metadata.partitions {
            return Err(Error::TooFewPartitions {
                topic: topic.to_string(),
                actual: metadata.partitions,
                wanted: partition + 1,
            });
        }
        Ok(())
    }
}

impl LogBackend for FileLog {
    fn name(&self) -> &'static str {
        "file"
    }

    fn topic_info(&self, topic: &str) -> Result<Option<TopicInfo>> {
        let Some(metadata) = self.read_metadata(topic)? else { return Ok(None) };
        let mut has_data = false;
        for partition in 0..metadata.partitions {
            has_data |= self.partition_has_data(topic, partition)?;
        }
        Ok(Some(TopicInfo { partitions: metadata.partitions, has_data }))
    }

    fn create_topic(&self, topic: &str, partitions: u32, overwrite: bool) -> Result<()> {
        self.create(topic, partitions, overwrite)
    }

    fn writer(&self, topic: &str, partition: u32) -> Result<Box<dyn PartitionWriter>> {
        Ok(Box::new(self.open_writer(topic, partition)?))
    }

    fn reader(&self, topic: &str, partition: u32, offset: u64) -> Result<Box<dyn PartitionReader>> {
        Ok(Box::new(self.open_reader(topic, partition, offset)?))
    }
}

impl BackendHooks for FileLog {}
