//! Reading one partition, following new segments and appends as they arrive.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::segment::{
    hop_records, open_segment, parse_record, segment_name, segments, Parsed, MAX_RECORD_BYTES, RECORD_HEADER,
};
use crate::error::{Error, PartitionId, Result};
use crate::log::{PartitionReader, Record};

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
    pub(super) fn open(dir: PathBuf, id: PartitionId, offset: u64) -> Result<Self> {
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

impl PartitionReader for FileReader {
    fn rereads_are_cheap(&self) -> bool {
        true
    }

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
