//! Capture and replay through the embedded file log with different worker counts.

mod common;

use std::sync::Arc;

use common::{capture, replay, Fingerprint};
use timely_kafka::log::file::FileLog;
use timely_kafka::log::LogBackend;

fn round_trip(send: usize, recv: usize, count: u64) {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn LogBackend> = Arc::new(FileLog::new(dir.path()));
    capture(log.clone(), "t", send, count);
    assert_eq!(replay(log, "t", recv), Fingerprint::expected(send as u64, count));
}

#[test]
fn one_to_one() {
    let _deadline = common::deadline();
    round_trip(1, 1, 100_000);
}

#[test]
fn five_to_three() {
    let _deadline = common::deadline();
    round_trip(5, 3, 50_000);
}

#[test]
fn three_to_five() {
    let _deadline = common::deadline();
    round_trip(3, 5, 50_000);
}

#[test]
fn four_to_one() {
    let _deadline = common::deadline();
    round_trip(4, 1, 50_000);
}

#[test]
fn small_segments_roll_and_replay() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn LogBackend> = Arc::new(FileLog::new(dir.path()).segment_bytes(4096));
    capture(log.clone(), "t", 2, 20_000);
    let segments = std::fs::read_dir(dir.path().join("t/0")).unwrap().count();
    assert!(segments > 10, "expected many segments, found {segments}");
    assert_eq!(replay(log, "t", 3), Fingerprint::expected(2, 20_000));
}

#[test]
fn many_timestamps_replay_with_the_same_times_and_frontiers() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    common::many_timestamps(Arc::new(FileLog::new(dir.path())), "times");
}
