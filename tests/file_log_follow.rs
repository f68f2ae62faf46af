//! A reader following a partition across its writer's crash and the next
//! writer's recovery: the crashed writer left a torn tail larger than the
//! writer's and the reader's 1 MiB buffers, the reader read into it, the next
//! writer cut it and appended new records in its place. The reader delivers
//! exactly the records before the tear, then the new ones: never the torn
//! record, never bytes of both.

use std::time::Duration;

use timely_kafka::log::file::FileLog;
use timely_kafka::log::{LogBackend, PartitionReader, PartitionWriter};

const OLD_RECORDS: u32 = 10;
/// The record the crash tears: 3 MiB, of which 2 MiB reach the file.
const TORN_RECORD: usize = 3 << 20;
const TORN_CUT: u64 = 1 << 20;

/// Distinct bytes for record `i` of writer `tag`.
fn payload(tag: u8, i: u32, len: usize) -> Vec<u8> {
    let seed = (tag as u32) << 24 | i;
    (0..len).map(|k| (seed.wrapping_mul(2654435761).wrapping_add((k as u32).wrapping_mul(40503)) >> 13) as u8).collect()
}

fn segment(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("t/0/00000000000000000000.log")
}

/// Old records, then a torn 3 MiB record; returns the old records and the
/// length of the valid part of the segment.
fn crashed_writer(dir: &tempfile::TempDir) -> (Vec<Vec<u8>>, u64) {
    let log = FileLog::new(dir.path());
    log.create_topic("t", 1, false).unwrap();
    let mut writer = log.open_writer("t", 0).unwrap();
    let old: Vec<Vec<u8>> = (0..OLD_RECORDS).map(|i| payload(1, i, 100 + i as usize * 37)).collect();
    for record in &old {
        writer.append(record).unwrap();
    }
    writer.flush().unwrap();
    let valid = std::fs::metadata(segment(dir)).unwrap().len();
    writer.append(&payload(1, OLD_RECORDS, TORN_RECORD)).unwrap();
    writer.flush().unwrap();
    drop(writer);
    let file = std::fs::OpenOptions::new().write(true).open(segment(dir)).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len - TORN_CUT).unwrap();
    assert!(len - TORN_CUT - valid > 1 << 20, "the torn tail is larger than 1 MiB");
    (old, valid)
}

/// A reader that has delivered `old` and read into the torn tail.
fn reader_in_the_torn_tail(log: &FileLog, old: &[Vec<u8>]) -> Box<dyn PartitionReader> {
    let mut reader = log.reader("t", 0, 0).unwrap();
    for (i, expected) in old.iter().enumerate() {
        let record = reader.poll(Duration::from_secs(5)).unwrap().expect("old record");
        assert_eq!((record.offset, record.payload), (i as u64, &expected[..]));
    }
    assert!(reader.poll(Duration::from_millis(50)).unwrap().is_none(), "the torn record must not be delivered");
    reader
}

/// Reads `expected` (offsets from OLD_RECORDS on), then nothing more.
fn assert_delivers(reader: &mut dyn PartitionReader, expected: &[Vec<u8>]) {
    for (i, expected) in expected.iter().enumerate() {
        let offset = OLD_RECORDS as u64 + i as u64;
        let record = reader
            .poll(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("offset {offset}: {e}"))
            .unwrap_or_else(|| panic!("offset {offset}: nothing delivered"));
        assert_eq!(record.offset, offset);
        assert!(record.payload == &expected[..], "offset {offset}: wrong payload of {} bytes", record.payload.len());
    }
    assert!(reader.poll(Duration::from_millis(50)).unwrap().is_none(), "more records than written");
}

/// The next writer cuts the tail and appends `new` (publishing as it goes)
/// while the reader follows; the reader sees exactly the new records.
fn resume_and_follow(new: Vec<Vec<u8>>, segment_bytes: Option<u64>, concurrent: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (old, valid) = crashed_writer(&dir);
    let log = FileLog::new(dir.path());
    let mut reader = reader_in_the_torn_tail(&log, &old);
    let writer_log = match segment_bytes {
        Some(bytes) => log.clone().segment_bytes(bytes),
        None => log.clone(),
    };
    let written = new.clone();
    let write = move || {
        let mut writer = writer_log.open_writer("t", 0).unwrap();
        assert_eq!(writer.next_offset(), OLD_RECORDS as u64, "the torn record was cut");
        for (i, record) in written.iter().enumerate() {
            writer.append(record).unwrap();
            if i % 50 == 49 {
                writer.publish().unwrap();
            }
        }
        writer.flush().unwrap();
    };
    if concurrent {
        let writing = std::thread::spawn(write);
        assert_delivers(reader.as_mut(), &new);
        writing.join().unwrap();
    } else {
        write();
        let len = std::fs::metadata(segment(&dir)).unwrap().len();
        assert!(segment_bytes.is_some() || len > valid, "the new writer appended where the tail was");
        assert_delivers(reader.as_mut(), &new);
    }
}

#[test]
fn more_new_bytes_than_the_torn_record_declared() {
    // 4.7 MiB of new records: the reader, reading on from where it stopped,
    // would complete the torn 3 MiB record with new bytes.
    let new = (0..600).map(|i| payload(2, i, 8 << 10)).collect();
    resume_and_follow(new, None, false);
}

#[test]
fn fewer_new_bytes_than_the_reader_had_read() {
    // The file ends up shorter than what the reader had read.
    let new = (0..5).map(|i| payload(2, i, 100)).collect();
    resume_and_follow(new, None, false);
}

#[test]
fn the_reader_follows_while_the_new_writer_appends() {
    let new = (0..2000).map(|i| payload(2, i, 1 + (i as usize * 977) % 9000)).collect();
    resume_and_follow(new, None, true);
}

#[test]
fn the_new_writer_rolls_to_new_segments_while_the_reader_follows() {
    // Segments of 1.5 MiB: the first roll comes right after the cut.
    let new = (0..900).map(|i| payload(2, i, 1 + (i as usize * 613) % 12000)).collect();
    resume_and_follow(new, Some(3 << 19), true);
}
