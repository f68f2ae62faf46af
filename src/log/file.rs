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
//! Crash safety: a writer killed mid-append leaves a *torn tail*, a last record
//! whose length runs past the end of the file or whose checksum fails. Readers
//! treat it as the end of the readable log (it is never delivered), and the
//! next writer truncates it when it opens the partition. A bad record with
//! more data after it is corruption, reported with its offset. Readers can
//! tail a partition while a writer in another process appends to it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{LogBackend, PartitionReader, PartitionWriter, Record, TopicInfo};
use crate::error::{Error, PartitionId, Result};
use crate::frame::CodecId;

/// Bytes of the per-record header in a segment.
const RECORD_HEADER: usize = 8;
/// Largest record accepted; a larger length field means corruption.
pub const MAX_RECORD_BYTES: usize = 1 << 30;
/// Default segment size before rolling to a new file.
pub const DEFAULT_SEGMENT_BYTES: u64 = 256 << 20;
const METADATA_FILE: &str = "topic.json";
const LOCK_FILE: &str = "writer.lock";

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
    codec: String,
    created_at_unix_ms: u128,
}

impl FileLog {
    /// A file log under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileLog { root: root.into(), segment_bytes: DEFAULT_SEGMENT_BYTES, sync: false }
    }

    /// Applies `key=value` properties: `segment.bytes` and `sync` (`true` to
    /// fsync on every flush; by default flushed data survives a process crash
    /// but not a power failure).
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
        let path = dir.join(METADATA_FILE);
        fs::rename(&tmp, &path).map_err(|e| Error::io(path, e))
    }

    /// Deletes every segment of a partition, holding its writer lock meanwhile.
    fn clear_partition(&self, topic: &str, partition: u32) -> Result<()> {
        let dir = self.partition_dir(topic, partition)?;
        if !dir.exists() {
            return Ok(());
        }
        let _lock = lock_partition(&dir, PartitionId::new(topic, partition))?;
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

    /// Creates `topic`, recording the codec its streams use.
    pub fn create_topic_with_codec(&self, topic: &str, partitions: u32, codec: CodecId, overwrite: bool) -> Result<()> {
        if partitions == 0 {
            return Err(Error::Config(format!("topic '{topic}': partition count must be at least 1")));
        }
        if let Some(existing) = self.read_metadata(topic)? {
            let mut has_data = false;
            for partition in 0..existing.partitions {
                has_data |= self.partition_has_data(topic, partition)?;
            }
            if has_data && !overwrite {
                return Err(Error::TopicNotEmpty(topic.to_string()));
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
            codec: codec.name().to_string(),
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
        Ok(())
    }

    /// Opens the writer of a partition with its concrete type.
    pub fn open_writer(&self, topic: &str, partition: u32) -> Result<FileWriter> {
        self.require_partition(topic, partition)?;
        FileWriter::open(
            self.partition_dir(topic, partition)?,
            PartitionId::new(topic, partition),
            self.segment_bytes,
            self.sync,
        )
    }

    /// Opens a reader of a partition with its concrete type.
    pub fn open_reader(&self, topic: &str, partition: u32, offset: u64) -> Result<FileReader> {
        self.require_partition(topic, partition)?;
        FileReader::open(self.partition_dir(topic, partition)?, PartitionId::new(topic, partition), offset)
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

    fn create_topic(&self, topic: &str, partitions: u32, codec: CodecId, overwrite: bool) -> Result<()> {
        self.create_topic_with_codec(topic, partitions, codec, overwrite)
    }

    fn writer(&self, topic: &str, partition: u32) -> Result<Box<dyn PartitionWriter>> {
        Ok(Box::new(self.open_writer(topic, partition)?))
    }

    fn reader(&self, topic: &str, partition: u32, offset: u64) -> Result<Box<dyn PartitionReader>> {
        Ok(Box::new(self.open_reader(topic, partition, offset)?))
    }
}

fn segment_name(base: u64) -> String {
    format!("{base:020}.log")
}

/// The segments of a partition directory, sorted by base offset.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name.strip_suffix(".log").and_then(|stem| stem.parse::<u64>().ok()) {
            found.push((base, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

fn lock_partition(dir: &Path, id: PartitionId) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let lock =
        OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked(id, path)),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}

/// Outcome of parsing the record at the front of a byte buffer.
enum Parsed {
    /// A whole, valid record: header + payload length.
    Record { payload_len: usize },
    /// Not enough bytes yet.
    Partial,
    /// Complete but its checksum fails.
    BadChecksum { stored: u32, computed: u32, record_len: usize },
    /// The length field is impossible.
    BadLength(usize),
}

fn parse_record(bytes: &[u8]) -> Parsed {
    if bytes.len() < RECORD_HEADER {
        return Parsed::Partial;
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if len > MAX_RECORD_BYTES {
        return Parsed::BadLength(len);
    }
    if bytes.len() < RECORD_HEADER + len {
        return Parsed::Partial;
    }
    let stored = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let computed = crc32c::crc32c(&bytes[RECORD_HEADER..RECORD_HEADER + len]);
    if stored != computed {
        return Parsed::BadChecksum { stored, computed, record_len: RECORD_HEADER + len };
    }
    Parsed::Record { payload_len: len }
}

/// Appends to one partition of the file log; holds its lock while open.
pub struct FileWriter {
    id: PartitionId,
    dir: PathBuf,
    _lock: File,
    segment: BufWriter<File>,
    segment_path: PathBuf,
    segment_len: u64,
    segment_bytes: u64,
    next_offset: u64,
    sync: bool,
}

impl FileWriter {
    fn open(dir: PathBuf, id: PartitionId, segment_bytes: u64, sync: bool) -> Result<Self> {
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock = lock_partition(&dir, id.clone())?;
        let existing = segments(&dir)?;
        let (base, path) = existing.last().cloned().unwrap_or_else(|| (0, dir.join(segment_name(0))));
        let (records, valid_len) = recover_segment(&path)?;
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        // Drop a torn tail left by a writer that died mid-append. Only then:
        // truncating (even to the same length) makes ext4 write the file back
        // on close (`auto_da_alloc`), which costs a capture half its speed.
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        if len > valid_len {
            file.set_len(valid_len).map_err(|e| Error::io(&path, e))?;
        }
        let mut file = file;
        file.seek(SeekFrom::End(0)).map_err(|e| Error::io(&path, e))?;
        Ok(FileWriter {
            id,
            dir,
            _lock: lock,
            segment: BufWriter::with_capacity(1 << 20, file),
            segment_path: path,
            segment_len: valid_len,
            segment_bytes,
            next_offset: base + records,
            sync,
        })
    }

    /// Offset the next appended record will get.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    fn roll(&mut self) -> Result<()> {
        self.flush()?;
        let path = self.dir.join(segment_name(self.next_offset));
        let file =
            OpenOptions::new().create(true).truncate(true).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        self.segment = BufWriter::with_capacity(1 << 20, file);
        self.segment_path = path;
        self.segment_len = 0;
        Ok(())
    }

    fn write_failed(&self, e: std::io::Error) -> Error {
        Error::Write { at: self.id.clone(), reason: format!("{}: {e}", self.segment_path.display()) }
    }
}

/// Counts the valid records of a segment and the length they span.
fn recover_segment(path: &Path) -> Result<(u64, u64)> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut at = 0;
    let mut records = 0;
    while let Parsed::Record { payload_len } = parse_record(&bytes[at..]) {
        at += RECORD_HEADER + payload_len;
        records += 1;
    }
    Ok((records, at as u64))
}

impl PartitionWriter for FileWriter {
    fn partition(&self) -> &PartitionId {
        &self.id
    }

    fn append(&mut self, record: &[u8]) -> Result<()> {
        if record.len() > MAX_RECORD_BYTES {
            return Err(Error::Write {
                at: self.id.clone(),
                reason: format!("record of {} bytes exceeds the {MAX_RECORD_BYTES}-byte limit", record.len()),
            });
        }
        if self.segment_len > 0 && self.segment_len + (RECORD_HEADER + record.len()) as u64 > self.segment_bytes {
            self.roll()?;
        }
        let mut header = [0u8; RECORD_HEADER];
        header[..4].copy_from_slice(&(record.len() as u32).to_le_bytes());
        header[4..].copy_from_slice(&crc32c::crc32c(record).to_le_bytes());
        self.segment.write_all(&header).map_err(|e| self.write_failed(e))?;
        self.segment.write_all(record).map_err(|e| self.write_failed(e))?;
        self.segment_len += (RECORD_HEADER + record.len()) as u64;
        self.next_offset += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.segment.flush().map_err(|e| self.write_failed(e))?;
        if self.sync {
            self.segment.get_ref().sync_data().map_err(|e| self.write_failed(e))?;
        }
        Ok(())
    }

    fn publish(&mut self) -> Result<()> {
        self.segment.flush().map_err(|e| self.write_failed(e))
    }

    fn max_record_bytes(&self) -> usize {
        MAX_RECORD_BYTES
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // Best effort: callers that care call `flush` and see its error.
        let _ = self.segment.flush();
    }
}

/// Reads one partition of the file log, following new segments and new
/// appends as they arrive.
pub struct FileReader {
    id: PartitionId,
    dir: PathBuf,
    segment: File,
    segment_path: PathBuf,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    /// Offset of the record at `buffer[start..]`.
    next_offset: u64,
    /// Records before this offset are skipped (reader opened mid-segment).
    skip_until: u64,
}

impl FileReader {
    fn open(dir: PathBuf, id: PartitionId, offset: u64) -> Result<Self> {
        let existing = segments(&dir)?;
        let (base, path) = existing
            .iter()
            .rev()
            .find(|(base, _)| *base <= offset)
            .cloned()
            .unwrap_or_else(|| existing.first().cloned().unwrap_or((0, dir.join(segment_name(0)))));
        let mut segment = open_segment(&path)?;
        // Hop over record headers to the requested offset instead of reading
        // the payloads before it. A corrupt length only misplaces the start,
        // and the checksum of the first record read then reports it.
        let (position, records) = hop_records(&segment, &path, offset.saturating_sub(base))?;
        segment.seek(SeekFrom::Start(position)).map_err(|e| Error::io(&path, e))?;
        Ok(FileReader {
            id,
            dir,
            segment,
            segment_path: path,
            buffer: vec![0; 1 << 20],
            start: 0,
            end: 0,
            next_offset: base + records,
            skip_until: offset,
        })
    }

    /// Reads more bytes of the current segment; returns how many.
    fn fill(&mut self) -> Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.buffer.len() - self.end < (1 << 16) {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buffer.len() {
            let grown = self.buffer.len() * 2;
            self.buffer.resize(grown, 0);
        }
        let read = self.segment.read(&mut self.buffer[self.end..]).map_err(|e| Error::io(&self.segment_path, e))?;
        self.end += read;
        Ok(read)
    }

    /// Whether bytes exist beyond what has been read: in this segment or a later one.
    fn more_follows(&self) -> Result<bool> {
        Ok(self.next_segment()?.is_some())
    }

    fn next_segment(&self) -> Result<Option<PathBuf>> {
        let path = self.dir.join(segment_name(self.next_offset));
        Ok(if path != self.segment_path && path.exists() { Some(path) } else { None })
    }

    /// Finds the next whole record in the buffer, reading as needed, without
    /// waiting. Returns its payload range.
    fn try_next(&mut self) -> Result<Option<(u64, usize, usize)>> {
        loop {
            match parse_record(&self.buffer[self.start..self.end]) {
                Parsed::Record { payload_len } => {
                    let offset = self.next_offset;
                    let payload_start = self.start + RECORD_HEADER;
                    self.start = payload_start + payload_len;
                    self.next_offset += 1;
                    if offset < self.skip_until {
                        continue;
                    }
                    return Ok(Some((offset, payload_start, payload_start + payload_len)));
                }
                Parsed::BadLength(len) => {
                    return Err(self.corrupt(format!("record length {len} exceeds {MAX_RECORD_BYTES}")));
                }
                Parsed::BadChecksum { stored, computed, record_len } => {
                    // A bad last record is a torn tail unless data follows it.
                    let follows_in_buffer = self.end > self.start + record_len;
                    if follows_in_buffer || self.fill()? > 0 || self.more_follows()? {
                        return Err(
                            self.corrupt(format!("checksum mismatch (stored {stored:08x}, computed {computed:08x})"))
                        );
                    }
                    return Ok(None);
                }
                Parsed::Partial => {
                    if self.fill()? > 0 {
                        continue;
                    }
                    match self.next_segment()? {
                        Some(path) if self.start == self.end => {
                            self.segment = open_segment(&path)?;
                            self.segment_path = path;
                        }
                        Some(_) => {
                            return Err(self.corrupt(format!(
                                "segment {} ends inside a record but a later segment exists",
                                self.segment_path.display()
                            )));
                        }
                        None => return Ok(None),
                    }
                }
            }
        }
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt { at: self.id.clone(), offset: self.next_offset, reason }
    }
}

/// Walks record headers from the start of a segment, reading 8 bytes per
/// record, for at most `limit` records or until the data ends. Returns the
/// byte position reached and the number of whole records passed.
fn hop_records(file: &File, path: &Path, limit: u64) -> Result<(u64, u64)> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let (mut position, mut records) = (0u64, 0u64);
    let mut header = [0u8; RECORD_HEADER];
    while records < limit && position + RECORD_HEADER as u64 <= len {
        file.read_exact_at(&mut header, position).map_err(|e| Error::io(path, e))?;
        let next = position
            + (RECORD_HEADER + u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize) as u64;
        if next > len {
            break;
        }
        position = next;
        records += 1;
    }
    Ok((position, records))
}

fn open_segment(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::io(path, e))
}

impl PartitionReader for FileReader {
    fn partition(&self) -> &PartitionId {
        &self.id
    }

    fn poll_stored(&mut self, _timeout: Duration) -> Result<Option<Record<'_>>> {
        self.poll(Duration::ZERO)
    }

    fn poll(&mut self, timeout: Duration) -> Result<Option<Record<'_>>> {
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_micros(200);
        let found = loop {
            if let Some(found) = self.try_next()? {
                break Some(found);
            }
            let now = Instant::now();
            if now >= deadline {
                break None;
            }
            std::thread::sleep(backoff.min(deadline - now));
            backoff = (backoff * 2).min(Duration::from_millis(20));
        };
        Ok(found.map(|(offset, from, to)| Record { offset, payload: &self.buffer[from..to] }))
    }

    fn first_available_offset(&mut self) -> Result<Option<u64>> {
        Ok(segments(&self.dir)?.first().map(|(base, _)| *base).or(Some(0)))
    }

    fn end_offset(&mut self) -> Result<u64> {
        match segments(&self.dir)?.last() {
            Some((base, path)) => {
                let file = open_segment(path)?;
                Ok(base + hop_records(&file, path, u64::MAX)?.1)
            }
            None => Ok(0),
        }
    }

    fn seek(&mut self, offset: u64) -> Result<()> {
        *self = FileReader::open(self.dir.clone(), self.id.clone(), offset)?;
        Ok(())
    }
}
