//! Appending to one partition; the writer holds the partition's lock.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

use super::segment::{lock_partition, recover_segment, segment_name, segments, MAX_RECORD_BYTES, RECORD_HEADER};
use crate::error::{Error, PartitionId, Result};
use crate::log::PartitionWriter;

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
    pub(super) fn open(dir: PathBuf, id: PartitionId, segment_bytes: u64, sync: bool) -> Result<Self> {
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
