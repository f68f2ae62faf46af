//! The file log's own guarantees: torn tails, corruption, locking, tailing.

use std::io::Write;
use std::time::Duration;

use timely_kafka::log::file::FileLog;
use timely_kafka::log::{LogBackend, PartitionReader, PartitionWriter};
use timely_kafka::Error;

fn log_with_records(n: u64) -> (tempfile::TempDir, FileLog) {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::new(dir.path());
    log.create_topic("t", 1, false).unwrap();
    let mut writer = log.open_writer("t", 0).unwrap();
    for i in 0..n {
        writer.append(format!("record {i}").as_bytes()).unwrap();
    }
    writer.flush().unwrap();
    (dir, log)
}

fn read_all(reader: &mut dyn PartitionReader) -> Result<Vec<(u64, String)>, Error> {
    let mut out = Vec::new();
    while let Some(record) = reader.poll(Duration::from_millis(50))? {
        out.push((record.offset, String::from_utf8(record.payload.to_vec()).unwrap()));
    }
    Ok(out)
}

fn segment(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("t/0/00000000000000000000.log")
}

#[test]
fn records_come_back_with_their_offsets() {
    let (_dir, log) = log_with_records(5);
    let records = read_all(&mut log.open_reader("t", 0, 0).unwrap()).unwrap();
    let expected: Vec<_> = (0..5).map(|i| (i, format!("record {i}"))).collect();
    assert_eq!(records, expected);
    let from_three = read_all(&mut log.open_reader("t", 0, 3).unwrap()).unwrap();
    assert_eq!(from_three, expected[3..].to_vec());
}

#[test]
fn torn_tail_ends_the_log_and_is_truncated_by_the_next_writer() {
    let (dir, log) = log_with_records(10);
    let path = segment(&dir);
    let len = std::fs::metadata(&path).unwrap().len();
    // A writer killed mid-append: the last record is cut short.
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 3).unwrap();
    let records = read_all(&mut log.open_reader("t", 0, 0).unwrap()).unwrap();
    assert_eq!(records.len(), 9, "the torn record must not be delivered");

    let mut writer = log.open_writer("t", 0).unwrap();
    assert_eq!(writer.next_offset(), 9);
    writer.append(b"after recovery").unwrap();
    writer.flush().unwrap();
    let records = read_all(&mut log.open_reader("t", 0, 0).unwrap()).unwrap();
    assert_eq!(records.last().unwrap(), &(9, "after recovery".to_string()));
}

#[test]
fn corrupt_byte_in_the_middle_names_the_offset() {
    let (dir, log) = log_with_records(10);
    let path = segment(&dir);
    let mut bytes = std::fs::read(&path).unwrap();
    // Records are 8 + 8 bytes ("record N"); byte 5 of record 4's payload.
    bytes[4 * 16 + 8 + 5] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let error = read_all(&mut log.open_reader("t", 0, 0).unwrap()).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Corrupt { offset: 4, .. }), "{message}");
    assert!(message.contains("topic 't' partition 0 offset 4"), "{message}");
}

#[test]
fn a_second_writer_is_refused() {
    let (_dir, log) = log_with_records(1);
    let _first = log.open_writer("t", 0).unwrap();
    let error = log.open_writer("t", 0).expect_err("second writer must be refused");
    assert!(matches!(error, Error::Locked(..)), "{error}");
    assert!(error.to_string().contains("another writer"), "{error}");
}

#[test]
fn reader_tails_a_writer_that_is_still_appending() {
    let (_dir, log) = log_with_records(0);
    let mut reader = log.open_reader("t", 0, 0).unwrap();
    assert!(reader.poll(Duration::from_millis(10)).unwrap().is_none());
    let writer_log = log.clone();
    let writer = std::thread::spawn(move || {
        let mut writer = writer_log.open_writer("t", 0).unwrap();
        for i in 0..200u32 {
            writer.append(&i.to_le_bytes()).unwrap();
            writer.publish().unwrap();
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        writer.flush().unwrap();
    });
    let mut seen = 0u32;
    while seen < 200 {
        let record = reader.poll(Duration::from_secs(10)).unwrap().expect("record within 10s");
        assert_eq!(record.offset, seen as u64);
        assert_eq!(record.payload, seen.to_le_bytes());
        seen += 1;
    }
    writer.join().unwrap();
}

#[test]
fn topic_with_data_is_refused_without_overwrite() {
    let (_dir, log) = log_with_records(1);
    let error = log.create_topic("t", 1, false).unwrap_err();
    assert!(matches!(error, Error::TopicNotEmpty(_)), "{error}");
    log.create_topic("t", 2, true).unwrap();
    let info = log.topic_info("t").unwrap().unwrap();
    assert_eq!((info.partitions, info.has_data), (2, false));
}

#[test]
fn bad_topic_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::new(dir.path());
    for name in ["", "..", "a/b", "x y"] {
        assert!(log.create_topic(name, 1, false).is_err(), "{name:?} accepted");
    }
    let _ = std::io::stdout().flush();
}
