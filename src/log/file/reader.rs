//! Reading one partition, following new segments and appends as they arrive.
//!
//! A reader that follows a live partition can outlive its writer: when the
//! writer dies mid-append the reader holds the first bytes of a torn record,
//! and the next writer truncates them and appends new records in their
//! place. Splicing what was buffered with what is read next would make a
//! record of both, so the reader checks that the bytes it buffered are still
//! the file's before it trusts a record built from them: whenever it stops
//! at the end of the file inside a record, and whenever a record fails its
//! checks. If they are not (the file got shorter, or its bytes changed), it
//! drops them and reads again from the first record it has not delivered:
//! the writer cuts only a torn tail, so every record delivered before it is
//! still there.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::segment::{
    classify_tail, hop_records, open_segment, parse_record, segment_name, segments, Parsed, Tail, RECORD_HEADER,
};
use crate::error::{Error, Result, TopicPartition};
use crate::log::{PartitionReader, ReaderHooks, Record};

/// Reads one partition of the file log, following new segments and new
/// appends as they arrive.
pub struct FileReader {
    id: TopicPartition,
    dir: PathBuf,
    segment: File,
    segment_path: PathBuf,
    segment_base: u64,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    /// Position in the segment just past the last byte read into `buffer`.
    read_to: u64,
    /// Length and modification time of the segment when the buffered bytes
    /// were last found to be the file's: unchanged, no need to compare again.
    verified: Option<(u64, SystemTime)>,
    /// Offset of the record at `buffer[start..]`.
    next_offset: u64,
    /// Records before this offset are skipped (reader opened mid-segment).
    skip_until: u64,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader").field("partition", &self.id).field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl FileReader {
    pub(super) fn open(dir: PathBuf, id: TopicPartition, offset: u64) -> Result<Self> {
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
            segment_base: base,
            buffer: vec![0; 1 << 20],
            start: 0,
            end: 0,
            read_to: position,
            verified: None,
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
        self.read_to += read as u64;
        Ok(read)
    }

    /// Position in the segment of `buffer[start]`: the first record not delivered.
    fn undelivered_position(&self) -> u64 {
        self.read_to - (self.end - self.start) as u64
    }

    /// Whether the buffered bytes are no longer the segment's: a writer cut
    /// them (a torn tail) and may have appended others in their place.
    fn rewritten(&mut self) -> Result<bool> {
        if self.start == self.end {
            return Ok(false);
        }
        let path = &self.segment_path;
        let metadata = self.segment.metadata().map_err(|e| Error::io(path, e))?;
        if metadata.len() < self.read_to {
            return Ok(true);
        }
        let snapshot = (metadata.len(), metadata.modified().map_err(|e| Error::io(path, e))?);
        if self.verified == Some(snapshot) {
            return Ok(false);
        }
        let mut position = self.undelivered_position();
        let mut on_disk = vec![0u8; (self.end - self.start).min(1 << 20)];
        for buffered in self.buffer[self.start..self.end].chunks(on_disk.len()) {
            let on_disk = &mut on_disk[..buffered.len()];
            match self.segment.read_exact_at(on_disk, position) {
                Ok(()) if on_disk == buffered => position += buffered.len() as u64,
                Ok(()) => return Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(true),
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        self.verified = Some(snapshot);
        Ok(false)
    }

    /// Drops the buffered bytes and reads again from the first record not
    /// delivered.
    fn reread_undelivered(&mut self) -> Result<()> {
        let position = self.undelivered_position();
        let len = self.segment.metadata().map_err(|e| Error::io(&self.segment_path, e))?.len();
        if len < position {
            return Err(self.corrupt(format!(
                "{} shrank to {len} bytes, below records already read (to byte {position})",
                self.segment_path.display()
            )));
        }
        self.segment.seek(SeekFrom::Start(position)).map_err(|e| Error::io(&self.segment_path, e))?;
        (self.start, self.end, self.read_to, self.verified) = (0, 0, position, None);
        Ok(())
    }

    /// The segment after the current one, if it exists yet.
    fn next_segment(&self) -> Result<Option<(u64, PathBuf)>> {
        Ok(segments(&self.dir)?.into_iter().find(|(base, _)| *base > self.segment_base))
    }

    /// At the end of the segment, with `next` following it: moves to `next`
    /// unless more of this one is to be read. The writer wrote this segment
    /// out before it created the next, so whatever is read now is the rest
    /// of this one (moving on at the first end seen could skip it).
    fn leave_for(&mut self, (base, next): (u64, PathBuf)) -> Result<()> {
        if self.fill()? > 0 {
            return Ok(());
        }
        if self.start != self.end {
            // A new writer that cut our torn tail may have rolled since.
            if self.rewritten()? {
                return self.reread_undelivered();
            }
            return Err(self.corrupt(format!(
                "segment {} ends inside a record but a later segment exists",
                self.segment_path.display()
            )));
        }
        if base != self.next_offset {
            return Err(self.corrupt(format!(
                "segment {} ends here but the next one, {}, starts at offset {base}",
                self.segment_path.display(),
                next.display()
            )));
        }
        self.segment = open_segment(&next)?;
        (self.segment_path, self.segment_base, self.read_to, self.verified) = (next, base, 0, None);
        Ok(())
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
                Parsed::Partial => {
                    if self.fill()? > 0 {
                        continue;
                    }
                    // At the end of the file, maybe inside a torn record.
                    if self.rewritten()? {
                        self.reread_undelivered()?;
                        continue;
                    }
                    match self.next_segment()? {
                        Some(next) => self.leave_for(next)?,
                        None => return Ok(None),
                    }
                }
                bad => {
                    if self.rewritten()? {
                        self.reread_undelivered()?;
                        continue;
                    }
                    if classify_tail(&self.buffer[self.start..self.end], false) == Tail::Corrupt {
                        return Err(self.corrupt(bad.reason()));
                    }
                    if self.fill()? > 0 {
                        continue; // more bytes decide it
                    }
                    // A torn tail, which the next writer cuts; in a segment
                    // that another follows, corruption.
                    match self.next_segment()? {
                        Some(next) => self.leave_for(next)?,
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

impl ReaderHooks for FileReader {
    fn rereads_are_cheap(&self) -> bool {
        true
    }
}

impl PartitionReader for FileReader {
    fn partition(&self) -> &TopicPartition {
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
