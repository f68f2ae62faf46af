//! What a writer opening a partition may cut, and what it must refuse.
//!
//! Only a torn tail is cut: a last record cut short by the end of the file,
//! a partial header, or zeros lasting to the end of the file. A bad record
//! with data after it is corruption: the writer refuses to open the
//! partition, names topic, partition and offset, and the segment is left
//! byte for byte as it was.

use std::time::Duration;

use timely_kafka::log::file::FileLog;
use timely_kafka::log::{LogBackend, PartitionReader, PartitionWriter};
use timely_kafka::Error;

/// Ten records of 8 + 9 bytes ("record N!").
fn log_with_records(n: u64) -> (tempfile::TempDir, FileLog) {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::new(dir.path());
    log.create_topic("t", 1, false).unwrap();
    let mut writer = log.open_writer("t", 0).unwrap();
    for i in 0..n {
        writer.append(format!("record {i}!").as_bytes()).unwrap();
    }
    writer.flush().unwrap();
    (dir, log)
}

const RECORD: usize = 8 + 9;

fn segment(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("t/0/00000000000000000000.log")
}

fn edit(dir: &tempfile::TempDir, change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = std::fs::read(segment(dir)).unwrap();
    change(&mut bytes);
    std::fs::write(segment(dir), &bytes).unwrap();
    bytes
}

fn read_all(reader: &mut dyn PartitionReader) -> Result<Vec<(u64, String)>, Error> {
    let mut out = Vec::new();
    while let Some(record) = reader.poll(Duration::from_millis(50))? {
        out.push((record.offset, String::from_utf8_lossy(record.payload).into_owned()));
    }
    Ok(out)
}

/// The writer refuses to open, naming `offset`; the segment is unchanged.
fn assert_refused(dir: &tempfile::TempDir, log: &FileLog, offset: u64, stored: &[u8]) {
    let error = log.open_writer("t", 0).expect_err("the writer must refuse a corrupt partition");
    let message = error.to_string();
    assert!(matches!(error, Error::Corrupt { offset: o, .. } if o == offset), "{message}");
    assert!(message.contains(&format!("topic 't' partition 0 offset {offset}")), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(std::fs::read(segment(dir)).unwrap() == stored, "the segment was modified: {message}");
}

/// The writer opens after cutting the tail at record `records`, and a record
/// appended then is read back right after the kept ones.
fn assert_cut_at(dir: &tempfile::TempDir, log: &FileLog, records: u64) {
    let mut writer = log.open_writer("t", 0).unwrap();
    assert_eq!(writer.next_offset(), records);
    assert_eq!(std::fs::metadata(segment(dir)).unwrap().len(), records * RECORD as u64);
    writer.append(b"after recovery").unwrap();
    writer.flush().unwrap();
    let read = read_all(&mut log.open_reader("t", 0, 0).unwrap()).unwrap();
    let mut expected: Vec<_> = (0..records).map(|i| (i, format!("record {i}!"))).collect();
    expected.push((records, "after recovery".to_string()));
    assert_eq!(read, expected);
}

#[test]
fn a_flipped_byte_mid_segment_is_refused_and_nothing_is_deleted() {
    let (dir, log) = log_with_records(10);
    let stored = edit(&dir, |b| b[4 * RECORD + 8 + 3] ^= 0x10);
    assert_refused(&dir, &log, 4, &stored);
    // The reader reports the same record.
    let error = read_all(&mut log.open_reader("t", 0, 0).unwrap()).unwrap_err();
    assert!(matches!(error, Error::Corrupt { offset: 4, .. }), "{error}");
}

#[test]
fn a_corrupt_first_record_is_refused_and_nothing_is_deleted() {
    // The first record of a captured stream is its header.
    let (dir, log) = log_with_records(10);
    let stored = edit(&dir, |b| b[8] ^= 0x01);
    assert_refused(&dir, &log, 0, &stored);
}

#[test]
fn a_corrupt_length_inside_the_segment_is_refused() {
    let (dir, log) = log_with_records(10);
    let stored = edit(&dir, |b| b[6 * RECORD] ^= 0x04);
    assert_refused(&dir, &log, 6, &stored);
}

#[test]
fn a_bad_last_record_ending_in_data_is_corruption_not_a_torn_tail() {
    // A crash leaves a prefix of what was appended: a record of full length
    // whose last byte is wrong was not torn.
    let (dir, log) = log_with_records(4);
    let stored = edit(&dir, |b| *b.last_mut().unwrap() ^= 0xff);
    assert_refused(&dir, &log, 3, &stored);
    let error = read_all(&mut log.open_reader("t", 0, 0).unwrap()).unwrap_err();
    assert!(matches!(error, Error::Corrupt { offset: 3, .. }), "{error}");
}

#[test]
fn a_zero_filled_tail_is_torn_and_cut() {
    let (dir, log) = log_with_records(10);
    edit(&dir, |b| b.extend_from_slice(&[0; 4096]));
    // Zeros are no records: a reader stops before them.
    assert_eq!(read_all(&mut log.open_reader("t", 0, 0).unwrap()).unwrap().len(), 10);
    assert_eq!(log.open_reader("t", 0, 0).unwrap().end_offset().unwrap(), 10);
    assert_cut_at(&dir, &log, 10);
}

#[test]
fn a_record_cut_short_is_torn_and_cut() {
    let (dir, log) = log_with_records(10);
    edit(&dir, |b| b.truncate(b.len() - 5));
    assert_cut_at(&dir, &log, 9);
    let (dir, log) = log_with_records(10);
    edit(&dir, |b| b.truncate(b.len() - RECORD + 3)); // a partial header
    assert_cut_at(&dir, &log, 9);
}

#[test]
fn a_record_whose_end_was_zero_filled_is_torn_and_cut() {
    // A power failure can leave zeros where the last pages were.
    let (dir, log) = log_with_records(10);
    edit(&dir, |b| {
        let len = b.len();
        b[len - 4..].fill(0);
        b.extend_from_slice(&[0; 100]);
    });
    assert_cut_at(&dir, &log, 9);
}

#[test]
fn zeros_followed_by_data_are_corruption() {
    let (dir, log) = log_with_records(10);
    let stored = edit(&dir, |b| {
        b[2 * RECORD..3 * RECORD].fill(0);
    });
    assert_refused(&dir, &log, 2, &stored);
}

#[test]
fn a_torn_tail_in_a_segment_that_another_follows_is_corruption() {
    // A roll writes a segment out before the next exists: a segment that
    // ends inside a record with another after it was damaged afterwards.
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::new(dir.path()).segment_bytes(5 * RECORD as u64);
    log.create_topic("t", 1, false).unwrap();
    let mut writer = log.open_writer("t", 0).unwrap();
    for i in 0..8 {
        writer.append(format!("record {i}!").as_bytes()).unwrap();
    }
    writer.flush().unwrap();
    drop(writer);
    edit(&dir, |b| b.truncate(b.len() - 2));
    let error = read_all(&mut log.open_reader("t", 0, 0).unwrap()).unwrap_err();
    assert!(matches!(error, Error::Corrupt { offset: 4, .. }), "{error}");
}

#[test]
fn empty_records_are_refused() {
    let (_dir, log) = log_with_records(1);
    let mut writer = log.open_writer("t", 0).unwrap();
    let error = writer.append(b"").unwrap_err();
    assert!(error.to_string().contains("topic 't' partition 0"), "{error}");
}
