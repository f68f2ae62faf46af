//! Appending to one partition; the writer holds the partition's lock.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::segment::{lock_partition, recover_segment, segment_name, segments, MAX_RECORD_BYTES, RECORD_HEADER};
use crate::error::{Error, Result, TopicPartition};
use crate::log::{PartitionWriter, WriterHooks};

/// Bytes the writer buffers before writing to its segment.
const WRITE_BUFFER: usize = 1 << 20;

/// Appends to one partition of the file log; holds its lock while open.
pub struct FileWriter {
    id: TopicPartition,
    dir: PathBuf,
    _lock: File,
    segment: BufWriter<File>,
    segment_path: PathBuf,
    segment_len: u64,
    segment_bytes: u64,
    next_offset: u64,
    sync: bool,
    durability: Durability,
}

impl std::fmt::Debug for FileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWriter")
            .field("partition", &self.id)
            .field("next_offset", &self.next_offset)
            .finish_non_exhaustive()
    }
}

/// What the writer made durable so far (with `sync`); read by tests.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Durability {
    /// fsync calls on segments and the partition directory.
    pub syncs: u64,
    /// Bytes of the current segment known to be on disk.
    pub synced_len: u64,
}

impl FileWriter {
    pub(super) fn open(dir: PathBuf, id: TopicPartition, segment_bytes: u64, sync: bool) -> Result<Self> {
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock = lock_partition(&dir, id.clone())?;
        let existing = segments(&dir)?;
        let (base, path) = existing.last().cloned().unwrap_or_else(|| (0, dir.join(segment_name(0))));
        // Only the last segment can end in a torn tail: a roll writes out
        // the previous segment before it creates the next.
        let recovered = recover_segment(&path, &id, base)?;
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        // Drop a torn tail left by a writer that died mid-append. Only then:
        // truncating (even to the same length) makes ext4 write the file back
        // on close (`auto_da_alloc`), which costs a capture half its speed.
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        if len > recovered.valid_len {
            file.set_len(recovered.valid_len).map_err(|e| Error::io(&path, e))?;
        }
        let mut file = file;
        file.seek(SeekFrom::End(0)).map_err(|e| Error::io(&path, e))?;
        let mut writer = FileWriter {
            id,
            dir,
            _lock: lock,
            segment: BufWriter::with_capacity(WRITE_BUFFER, file),
            segment_path: path,
            segment_len: recovered.valid_len,
            segment_bytes,
            next_offset: base + recovered.records,
            sync,
            durability: Durability::default(),
        };
        if sync {
            // The cut (or a segment just created) must reach the disk before
            // anything appended after it.
            writer.sync_segment()?;
            writer.sync_dir()?;
        }
        Ok(writer)
    }

    /// Offset the next appended record will get.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// What this writer made durable so far (tests assert fsync ordering).
    #[doc(hidden)]
    pub fn durability(&self) -> Durability {
        self.durability
    }

    fn roll(&mut self) -> Result<()> {
        self.flush()?;
        let path = self.dir.join(segment_name(self.next_offset));
        // `create_new`: a segment of that name can only be another writer's
        // data, never something to overwrite.
        let file = OpenOptions::new().create_new(true).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        self.segment = BufWriter::with_capacity(WRITE_BUFFER, file);
        self.segment_path = path;
        self.segment_len = 0;
        self.durability.synced_len = 0;
        if self.sync {
            // The new segment's name must be on disk before a commit in it is.
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Writes out the buffer and fsyncs the segment, unless nothing was
    /// appended since the last fsync.
    fn sync_segment(&mut self) -> Result<()> {
        self.segment.flush().map_err(|e| self.write_failed(e))?;
        if self.durability.syncs > 0 && self.durability.synced_len == self.segment_len {
            return Ok(());
        }
        self.segment.get_ref().sync_data().map_err(|e| self.write_failed(e))?;
        self.durability.syncs += 1;
        self.durability.synced_len = self.segment_len;
        Ok(())
    }

    fn sync_dir(&mut self) -> Result<()> {
        sync_dir(&self.dir).map_err(|e| self.write_failed(e))?;
        self.durability.syncs += 1;
        Ok(())
    }

    fn write_failed(&self, e: std::io::Error) -> Error {
        Error::Write { at: self.id.clone(), reason: format!("{}: {e}", self.segment_path.display()) }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl PartitionWriter for FileWriter {
    fn partition(&self) -> &TopicPartition {
        &self.id
    }

    fn append(&mut self, record: &[u8]) -> Result<()> {
        if record.is_empty() || record.len() > MAX_RECORD_BYTES {
            // Empty records are refused so that a zero-filled tail (a zero
            // length) can never read as records.
            return Err(Error::Write {
                at: self.id.clone(),
                reason: format!(
                    "record of {} bytes: the file log stores records of 1 to {MAX_RECORD_BYTES} bytes",
                    record.len()
                ),
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
        if self.sync {
            return self.sync_segment();
        }
        self.segment.flush().map_err(|e| self.write_failed(e))
    }

    fn publish(&mut self) -> Result<()> {
        self.segment.flush().map_err(|e| self.write_failed(e))
    }

    fn max_record_bytes(&self) -> usize {
        MAX_RECORD_BYTES
    }
}

impl WriterHooks for FileWriter {
    /// With `sync`: everything appended so far reaches the disk before the
    /// commit record is appended, so no commit is ever on disk without the
    /// records it covers.
    fn before_commit(&mut self) -> Result<()> {
        if self.sync {
            self.sync_segment()?;
        }
        Ok(())
    }

    /// With `sync`, fsyncs the commit record (published already) before
    /// returning.
    fn commit_point(&mut self) -> Result<()> {
        if self.sync {
            self.sync_segment()?;
        }
        Ok(())
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // Best effort: callers that care call `flush` and see its error.
        let _ = self.segment.flush();
    }
}
