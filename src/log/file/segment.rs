//! The segment format: record framing, segment files, the writer lock.
//!
//! A segment is a sequence of records `[len: u32 LE][crc32c(payload): u32 LE][payload]`,
//! named by the offset of its first record. Everything here is shared by the
//! writer and the reader of a partition.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, TopicPartition};

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

pub(super) fn lock_partition(dir: &Path, id: TopicPartition) -> Result<File> {
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
    BadChecksum { stored: u32, computed: u32 },
    /// The length field is impossible: zero (the file log stores no empty
    /// records, so a zero-filled tail never reads as records) or too large.
    BadLength(usize),
}

impl Parsed {
    /// Why a record that is not [`Parsed::Record`] nor [`Parsed::Partial`] is bad.
    pub(super) fn reason(&self) -> String {
        match self {
            Parsed::BadChecksum { stored, computed } => {
                format!("checksum mismatch (stored {stored:08x}, computed {computed:08x})")
            }
            Parsed::BadLength(0) => "record length 0 (the file log stores no empty records)".to_string(),
            Parsed::BadLength(len) => format!("record length {len} exceeds {MAX_RECORD_BYTES}"),
            Parsed::Record { .. } | Parsed::Partial => "valid so far".to_string(),
        }
    }
}

/// The declared payload length of a record header, if it is possible.
fn declared_len(header: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    (1..=MAX_RECORD_BYTES).contains(&len).then_some(len)
}

pub(super) fn parse_record(bytes: &[u8]) -> Parsed {
    if bytes.len() < RECORD_HEADER {
        return Parsed::Partial;
    }
    let Some(len) = declared_len(bytes) else {
        return Parsed::BadLength(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize);
    };
    if bytes.len() < RECORD_HEADER + len {
        return Parsed::Partial;
    }
    let stored = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let computed = crc32c::crc32c(&bytes[RECORD_HEADER..RECORD_HEADER + len]);
    if stored != computed {
        return Parsed::BadChecksum { stored, computed };
    }
    Parsed::Record { payload_len: len }
}

/// What the bytes from the first record that is not whole and valid onwards are.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Tail {
    /// What a crash leaves: the writer may cut it.
    Torn,
    /// Corruption: nothing may be cut.
    Corrupt,
    /// Undecided: more bytes are needed (or the end of the file).
    Unknown,
}

/// Classifies `tail`, the bytes from the first record that is not whole and
/// valid up to what has been read; `at_end`: they reach the end of the file.
///
/// The rule (see the module doc of [`super`]): the record is torn when no
/// byte from its last byte on is non-zero — the file ends before it or a run
/// of zeros lasting to the end of the file covers its end. Its last byte is
/// that of its header when its length is impossible.
pub(super) fn classify_tail(tail: &[u8], at_end: bool) -> Tail {
    let last_byte = match tail.get(..RECORD_HEADER).and_then(declared_len) {
        Some(len) => RECORD_HEADER + len - 1,
        None => RECORD_HEADER - 1,
    };
    match tail.get(last_byte..) {
        Some(rest) if rest.iter().any(|b| *b != 0) => Tail::Corrupt,
        _ if at_end => Tail::Torn,
        _ => Tail::Unknown,
    }
}

/// The valid part of a segment, as the writer's recovery finds it.
pub(super) struct Recovered {
    /// Whole, valid records from the segment's start.
    pub records: u64,
    /// Bytes they span: where a torn tail, if any, begins.
    pub valid_len: u64,
}

/// Counts the valid records of a segment and checks that what follows them,
/// if anything, is a torn tail. Anything else is corruption, reported with
/// the offset of the first bad record (the segment starts at `base`); the
/// segment is not modified either way.
pub(super) fn recover_segment(path: &Path, id: &TopicPartition, base: u64) -> Result<Recovered> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Recovered { records: 0, valid_len: 0 }),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut at = 0;
    let mut records = 0;
    let parsed = loop {
        match parse_record(&bytes[at..]) {
            Parsed::Record { payload_len } => {
                at += RECORD_HEADER + payload_len;
                records += 1;
            }
            other => break other,
        }
    };
    if at < bytes.len() && classify_tail(&bytes[at..], true) == Tail::Corrupt {
        return Err(Error::Corrupt {
            at: id.clone(),
            offset: base + records,
            reason: format!(
                "{} with data after it (byte {at} of {}): not a torn tail; the writer refuses to open the partition \
                 and deleted nothing",
                parsed.reason(),
                path.display()
            ),
        });
    }
    Ok(Recovered { records, valid_len: at as u64 })
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
        // An impossible length (a zero-filled tail) ends the records too.
        let Some(payload_len) = declared_len(&header) else { break };
        let next = position + (RECORD_HEADER + payload_len) as u64;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: &[u8]) -> Vec<u8> {
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn torn_tails_and_corruption() {
        let whole = record(b"payload!");
        let bad = {
            let mut bytes = whole.clone();
            bytes[9] ^= 1;
            bytes
        };
        let with = |head: &[u8], tail: &[u8]| [head, tail].concat();
        // Torn: cut short by the end of the file, or by zeros lasting to it.
        assert_eq!(classify_tail(&whole[..5], true), Tail::Torn);
        assert_eq!(classify_tail(&whole[..12], true), Tail::Torn);
        assert_eq!(classify_tail(&[0; 4096], true), Tail::Torn);
        assert_eq!(classify_tail(&with(&whole[..12], &[0; 100]), true), Tail::Torn);
        let mut zero_ended = whole.clone();
        zero_ended[14..].fill(0);
        assert_eq!(classify_tail(&zero_ended, true), Tail::Torn);
        // Not yet known while the end of the file is not reached.
        assert_eq!(classify_tail(&whole[..12], false), Tail::Unknown);
        // Corrupt: a bad record with a non-zero byte from its last byte on.
        assert_eq!(classify_tail(&bad, true), Tail::Corrupt);
        assert_eq!(classify_tail(&with(&bad, &whole), false), Tail::Corrupt);
        assert_eq!(classify_tail(&with(&[0; 16], &whole), true), Tail::Corrupt);
        assert_eq!(classify_tail(&with(&[0xff; 8], &[0; 8]), true), Tail::Corrupt);
    }
}
