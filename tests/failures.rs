//! A capture or replay failure in one worker ends the whole computation:
//! through the helpers as an `Err`, with plain timely calls as a non-zero
//! exit with the message (checked in child processes of this test binary).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::dataflow::operators::capture::Replay;
use timely::dataflow::operators::{Capture, Exchange, Inspect, Probe, ToStream};
use timely_kafka::capture::worker::{self, CaptureOptions, ReplayOptions};
use timely_kafka::log::file::FileLog;
use timely_kafka::log::{LogBackend, PartitionReader, PartitionWriter, TopicInfo};
use timely_kafka::{Bincode, CodecId, Error, EventConsumer, PartitionId, Result};

const PARTITIONS: usize = 3;
const COUNT: u64 = 20_000;

/// A topic of three captured partitions, one byte of record 10 of
/// partition 1 flipped (inside the frame, so the checksum catches it).
fn corrupt_topic() -> (tempfile::TempDir, Arc<dyn LogBackend>) {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn LogBackend> = Arc::new(FileLog::new(dir.path()));
    common::capture(log.clone(), "c", PARTITIONS, COUNT);
    let path = dir.path().join("c/1/00000000000000000000.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut at = 0;
    for _ in 0..10 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
    }
    bytes[at + 8 + 40] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    (dir, log)
}

fn helper_replay(log: Arc<dyn LogBackend>, workers: usize) -> Result<Vec<u64>> {
    let config = if workers == 1 { timely::Config::thread() } else { timely::Config::process(workers) };
    worker::execute(config, move |w| {
        let options = ReplayOptions { idle_timeout: Some(Duration::from_secs(20)), ..Default::default() };
        let streams = worker::replay::<u64, Vec<u64>, Bincode>(w, log.as_ref(), "c", &options)?;
        let seen = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let count = seen.clone();
        let probe = w.dataflow::<u64, _, _>(|scope| {
            streams.replay_into(scope).exchange(|x| *x).inspect(move |_| count.set(count.get() + 1)).probe().0
        });
        w.step_while(|| !probe.done());
        Ok(seen.get())
    })
}

#[test]
fn helpers_return_a_corrupt_partition_as_an_error_for_any_worker_count() {
    let _deadline = common::deadline();
    let (_dir, log) = corrupt_topic();
    // 5 workers: two of them have no partition.
    for workers in [1, 2, 3, 5] {
        let started = Instant::now();
        let error = helper_replay(log.clone(), workers).expect_err("the corrupt partition fails the replay");
        let message = error.to_string();
        assert!(matches!(error, Error::Corrupt { offset: 10, .. }), "{workers} workers: {message}");
        assert!(message.contains("topic 'c' partition 1 offset 10"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(15), "{workers} workers took {:?}", started.elapsed());
    }
}

#[test]
fn helpers_replay_a_healthy_topic_with_more_workers_than_partitions() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn LogBackend> = Arc::new(FileLog::new(dir.path()));
    common::capture(log.clone(), "c", PARTITIONS, COUNT);
    let counts = helper_replay(log, 5).unwrap();
    assert_eq!(counts.len(), 5);
    assert_eq!(counts.iter().sum::<u64>(), PARTITIONS as u64 * COUNT);
}

#[test]
fn helpers_refuse_a_missing_topic_on_every_worker() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let error = helper_replay(Arc::new(FileLog::new(dir.path())), 3).unwrap_err();
    assert!(error.to_string().contains("topic 'c' does not exist"), "{error}");
}

/// A log whose partition 1 writer fails after a few records.
struct FailingWrites(FileLog);

struct FailingWriter(Box<dyn PartitionWriter>, u32);

impl PartitionWriter for FailingWriter {
    fn partition(&self) -> &PartitionId {
        self.0.partition()
    }
    fn append(&mut self, record: &[u8]) -> Result<()> {
        if self.1 == 0 {
            return Err(Error::Write { at: self.partition().clone(), reason: "injected failure".into() });
        }
        self.1 -= 1;
        self.0.append(record)
    }
    fn flush(&mut self) -> Result<()> {
        self.0.flush()
    }
}

impl LogBackend for FailingWrites {
    fn name(&self) -> &'static str {
        "failing"
    }
    fn topic_info(&self, topic: &str) -> Result<Option<TopicInfo>> {
        self.0.topic_info(topic)
    }
    fn create_topic(&self, topic: &str, partitions: u32, codec: CodecId, overwrite: bool) -> Result<()> {
        self.0.create_topic(topic, partitions, codec, overwrite)
    }
    fn writer(&self, topic: &str, partition: u32) -> Result<Box<dyn PartitionWriter>> {
        let writer = self.0.writer(topic, partition)?;
        Ok(if partition == 1 { Box::new(FailingWriter(writer, 5)) } else { writer })
    }
    fn reader(&self, topic: &str, partition: u32, offset: u64) -> Result<Box<dyn PartitionReader>> {
        self.0.reader(topic, partition, offset)
    }
}

#[test]
fn a_failed_write_in_one_worker_is_the_computations_error() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(FailingWrites(FileLog::new(dir.path())));
    let started = Instant::now();
    let error = worker::execute(timely::Config::process(3), move |w| {
        let producer = worker::capture::<u64, Vec<u64>, Bincode>(w, log.as_ref(), "w", &CaptureOptions::default())?;
        w.dataflow::<u64, _, _>(|s| (0..50_000u64).to_stream(s).container::<Vec<_>>().capture_into(producer));
        Ok(())
    })
    .unwrap_err();
    assert!(error.to_string().contains("topic 'w' partition 1: write failed: injected failure"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // The healthy partitions are complete streams.
    let log: Arc<dyn LogBackend> = Arc::new(FileLog::new(dir.path()));
    for partition in [0, 2] {
        let consumer = EventConsumer::<u64, Vec<u64>>::open(log.as_ref(), "w", partition, Duration::from_secs(5));
        let note = consumer.unwrap().session_note().map(String::from);
        assert_eq!(note, None, "partition {partition} holds one complete session");
    }
}

#[test]
fn helpers_refuse_an_existing_topic_on_every_worker_without_overwrite() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn LogBackend> = Arc::new(FileLog::new(dir.path()));
    common::capture(log.clone(), "full", 2, 10);
    let error = worker::execute(timely::Config::process(2), move |w| {
        worker::capture::<u64, Vec<u64>, Bincode>(w, log.as_ref(), "full", &CaptureOptions::default()).map(|_| ())
    })
    .unwrap_err();
    assert!(error.to_string().contains("already holds data"), "{error}");
}

/// What the child processes run: plain timely calls, as the README's
/// library example, over a corrupt partition, with four workers (one without
/// a partition). Does nothing unless started by a test below.
#[test]
fn child_plain_timely_replay() {
    let Ok(mode) = std::env::var("TK_FAILURE_CHILD") else { return };
    let dir = std::path::PathBuf::from(std::env::var("TK_FAILURE_DIR").unwrap());
    if mode == "watchdog" {
        timely_kafka::capture::failure::set_grace_period(Some(Duration::from_secs(1)));
    }
    let log = FileLog::new(dir);
    let sums = timely::execute(timely::Config::process(4), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let consumers: Vec<EventConsumer<u64, Vec<u64>>> = timely_kafka::StreamLayout::assigned(3, index, peers)
            .map(|p| EventConsumer::open(&log, "c", p, Duration::from_secs(5)).unwrap())
            .collect();
        let probe = worker.dataflow::<u64, _, _>(|s| consumers.replay_into(s).exchange(|x| *x).probe().0);
        worker.step_while(|| !probe.done());
    })
    .unwrap()
    .join();
    println!("child: {} workers ended", sums.len());
    if mode == "watchdog" {
        // A program that neither ends nor looks at the failure.
        std::thread::sleep(Duration::from_secs(120));
    }
}

fn run_child(mode: &str) -> (std::process::Output, Duration) {
    let (dir, _log) = corrupt_topic();
    let started = Instant::now();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["child_plain_timely_replay", "--exact", "--nocapture", "--test-threads=1"])
        .env("TK_FAILURE_CHILD", mode)
        .env("TK_FAILURE_DIR", dir.path())
        .output()
        .unwrap();
    (output, started.elapsed())
}

#[test]
fn plain_timely_calls_end_with_the_message_and_a_nonzero_exit() {
    let _deadline = common::deadline();
    let (output, took) = run_child("exit");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.contains("child: 4 workers ended"), "every worker ended: {stdout} {stderr}");
    assert_eq!(output.status.code(), Some(1), "{stdout} {stderr}");
    assert!(stderr.contains("timely-kafka: error: replay failed: topic 'c' partition 1 offset 10"), "{stderr}");
    assert!(stderr.contains("the program ended without handling it"), "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn an_unhandled_failure_in_a_program_that_keeps_running_ends_it() {
    let _deadline = common::deadline();
    let (output, took) = run_child("watchdog");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("replay failed: topic 'c' partition 1 offset 10"), "{stderr}");
    assert!(stderr.contains("unhandled for 1s"), "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}
