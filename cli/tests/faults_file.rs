//! Faults and bad input on the file log: killed captures, duplicates, gaps,
//! mixed sessions, foreign records and wrong types.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{copy_records, replay_partition, Fingerprint};
use timely_kafka::log::file::FileLog;
use timely_kafka::log::{LogBackend, PartitionReader, PartitionWriter};
use timely_kafka::EventConsumer;

fn file_log() -> (tempfile::TempDir, Arc<dyn LogBackend>) {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn LogBackend> = Arc::new(FileLog::new(dir.path()));
    (dir, log)
}

#[test]
fn killed_capture_is_reported_incomplete_then_overwritten() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let send = env!("CARGO_BIN_EXE_capture_send");
    let recv = env!("CARGO_BIN_EXE_capture_recv");
    let mut child = Command::new(send)
        .args(["k", "2000000000", "-w2", "--data-dir"])
        .arg(dir.path())
        .env_remove("KAFKA_BROKERS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Let it write some data, then SIGKILL it mid-capture.
    let segment = dir.path().join("k/0/00000000000000000000.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&segment).map(|m| m.len()).unwrap_or(0) < 4 << 20 {
        assert!(Instant::now() < deadline, "capture wrote nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let started = Instant::now();
    let output = Command::new(recv).args(["k", "--idle-timeout", "2", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("stream incomplete") && stderr.contains("partition"), "{stderr}");
    assert!(stderr.contains("after offset") && stderr.contains("frontier still [0]"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20));

    let output =
        Command::new(send).args(["k", "1000", "-w2", "--overwrite", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = Command::new(recv).args(["k", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("records=2000 sum=1999000"));
}

#[test]
fn duplicates_are_skipped_and_a_gap_is_an_error() {
    let _deadline = common::deadline();
    let (_dir, log) = file_log();
    common::capture(log.clone(), "src", 1, 30_000);
    copy_records(log.as_ref(), "src", "dup", |offset, record| {
        if offset % 5 == 2 {
            vec![record.to_vec(), record.to_vec()]
        } else {
            vec![record.to_vec()]
        }
    });
    let (fp, stats, error) = replay_partition(log.as_ref(), "dup");
    assert_eq!(error, None);
    assert_eq!(fp, Fingerprint::expected(1, 30_000));
    assert!(stats.duplicates > 0);

    copy_records(log.as_ref(), "src", "gap", |offset, record| if offset == 4 { vec![] } else { vec![record.to_vec()] });
    let (_, _, error) = replay_partition(log.as_ref(), "gap");
    let error = error.expect("a gap is an error");
    assert!(error.contains("topic 'gap' partition 0 offset 4") && error.contains("gap"), "{error}");
}

/// Copies `topic` partition 0 without its last record (the final event).
fn without_final(log: &dyn LogBackend, from: &str, to: &str) {
    let end = log.reader(from, 0, 0).unwrap().end_offset().unwrap();
    copy_records(log, from, to, |offset, record| if offset + 1 == end { vec![] } else { vec![record.to_vec()] });
}

#[test]
fn replay_picks_the_newest_complete_session() {
    let _deadline = common::deadline();
    let (_dir, log) = file_log();
    common::capture(log.clone(), "a", 1, 1000); // complete: values 0..1000
    common::capture(log.clone(), "b", 1, 10); // will be made incomplete
    without_final(log.as_ref(), "b", "b-cut");

    // A complete session followed by an interrupted restart: replay the first.
    copy_records(log.as_ref(), "a", "restart", |_, r| vec![r.to_vec()]);
    let mut writer = log.writer("restart", 0).unwrap();
    let mut reader = log.reader("b-cut", 0, 0).unwrap();
    while let Some(record) = reader.poll(Duration::from_millis(100)).unwrap() {
        writer.append(record.payload).unwrap();
    }
    writer.flush().unwrap();
    drop(writer);
    let consumer = EventConsumer::<u64, Vec<u64>>::open(log.as_ref(), "restart", 0, Duration::from_secs(5)).unwrap();
    let note = consumer.session_note().unwrap_or_default().to_string();
    assert!(note.contains("incomplete") && note.contains("newest complete session"), "{note}");
    let (fp, _, error) = replay_partition(log.as_ref(), "restart");
    assert_eq!(error, None);
    assert_eq!(fp, Fingerprint::expected(1, 1000));

    // An interrupted session followed by a complete re-run: replay the re-run.
    copy_records(log.as_ref(), "b-cut", "rerun", |_, r| vec![r.to_vec()]);
    let mut writer = log.writer("rerun", 0).unwrap();
    let mut reader = log.reader("a", 0, 0).unwrap();
    while let Some(record) = reader.poll(Duration::from_millis(100)).unwrap() {
        writer.append(record.payload).unwrap();
    }
    writer.flush().unwrap();
    drop(writer);
    let (fp, _, error) = replay_partition(log.as_ref(), "rerun");
    assert_eq!(error, None);
    assert_eq!(fp, Fingerprint::expected(1, 1000));
}

#[test]
fn wrong_value_type_is_refused_before_decoding() {
    let _deadline = common::deadline();
    let (_dir, log) = file_log();
    common::capture(log.clone(), "typed", 1, 100);
    use timely::dataflow::operators::capture::event::EventIterator;
    let mut consumer =
        EventConsumer::<u64, Vec<String>>::open(log.as_ref(), "typed", 0, Duration::from_secs(5)).unwrap();
    let handle = consumer.status();
    // The refusal closes the stream at once: its only event retracts the
    // initial capability, no data is decoded.
    let event = consumer.next().map(|e| e.into_owned());
    assert_eq!(event, Some(timely::dataflow::operators::capture::Event::Progress(vec![(0, -1)])));
    assert!(consumer.next().is_none());
    let error = handle.error().unwrap().to_string();
    assert!(error.contains("replay expects Event<u64, alloc::vec::Vec<alloc::string::String>>"), "{error}");
    assert!(error.contains("topic 'typed' partition 0 offset 0"), "{error}");
    assert!(error.contains("ReplayOptions::skip_type_check"), "the refusal says how to opt out: {error}");
}

#[test]
fn foreign_records_give_one_clear_line() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::new(dir.path());
    log.create_topic("plain", 1, false).unwrap();
    let mut writer = log.open_writer("plain", 0).unwrap();
    writer.append(b"hello from another program").unwrap();
    writer.flush().unwrap();
    drop(writer);
    let output = Command::new(env!("CARGO_BIN_EXE_capture_recv"))
        .args(["plain", "--data-dir"])
        .arg(dir.path())
        .env_remove("KAFKA_BROKERS")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("topic 'plain' partition 0 offset 0") && stderr.contains("not a timely-kafka frame"),
        "{stderr}"
    );
}
