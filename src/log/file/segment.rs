//! The segment format: record framing, segment files, the writer lock.
//!
//! A segment is a sequence of records `[len: u32 LE][crc32c(payload): u32 LE][payload]`,
//! named by the offset of its first record. Everything here is shared by the
//! writer and the reader of a partition.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, PartitionId, Result};

/// Bytes of the per-record header in a segment.
pub(super) const RECORD_HEADER: usize = 8;
/// Largest record accepted; a larger length field means corruption.
pub const MAX_RECORD_BYTES: usize = 1 << 30;
const LOCK_FILE: &str = "writer.lock";

pub(super) fn segment_name(base: u64) -> String {
    format!("{base:020}.log")
}

/// The segments of a partition directory, sorted by base offset.
pub(super) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
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

pub(super) fn lock_partition(dir: &Path, id: PartitionId) -> Result<File> {
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
pub(super) enum Parsed {
    /// A whole, valid record: header + payload length.
    Record { payload_len: usize },
    /// Not enough bytes yet.
    Partial,
    /// Complete but its checksum fails.
    BadChecksum { stored: u32, computed: u32, record_len: usize },
    /// The length field is impossible.
    BadLength(usize),
}

pub(super) fn parse_record(bytes: &[u8]) -> Parsed {
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

/// Counts the valid records of a segment and the length they span.
pub(super) fn recover_segment(path: &Path) -> Result<(u64, u64)> {
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

/// Walks record headers from the start of a segment, reading 8 bytes per
/// record, for at most `limit` records or until the data ends. Returns the
/// byte position reached and the number of whole records passed.
pub(super) fn hop_records(file: &File, path: &Path, limit: u64) -> Result<(u64, u64)> {
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

pub(super) fn open_segment(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::io(path, e))
}
