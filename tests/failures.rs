//! A capture or replay failure in one worker ends the whole computation:
//! through the helpers as an `Err`, with plain timely calls as one line on
//! stderr; the exit status changes only if the program opted in (checked in
//! child processes of this test binary).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::dataflow::operators::capture::Replay;
use timely::dataflow::operators::{Capture, Exchange, Inspect, Probe, ToStream};
use timely_kafka::error::TopicPartition;
use timely_kafka::inspect::inspect_partition;
use timely_kafka::log::file::FileLog;
use timely_kafka::log::{BackendHooks, LogBackend, PartitionReader, PartitionWriter, TopicInfo, WriterHooks};
use timely_kafka::{capture, execute, replay, CaptureOptions, ReplayOptions};
use timely_kafka::{Error, EventConsumer, EventProducer, Result};

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
    execute(config, move |w| {
        let options = ReplayOptions { idle_timeout: Some(Duration::from_secs(20)), ..Default::default() };
        let streams: Vec<EventConsumer<u64, Vec<u64>>> = replay(w, log.as_ref(), "c", options)?;
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
    fn partition(&self) -> &TopicPartition {
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

impl WriterHooks for FailingWriter {}

impl BackendHooks for FailingWrites {}

impl LogBackend for FailingWrites {
    fn name(&self) -> &'static str {
        "failing"
    }
    fn topic_info(&self, topic: &str) -> Result<Option<TopicInfo>> {
        self.0.topic_info(topic)
    }
    fn create_topic(&self, topic: &str, partitions: u32, overwrite: bool) -> Result<()> {
        self.0.create_topic(topic, partitions, overwrite)
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
    let error = execute(timely::Config::process(3), move |w| {
        let producer = capture(w, log.as_ref(), "w", CaptureOptions::default())?;
        w.dataflow::<u64, _, _>(|s| (0..50_000u64).to_stream(s).container::<Vec<_>>().capture_into(producer));
        Ok(())
    })
    .unwrap_err();
    assert!(error.to_string().contains("topic 'w' partition 1: write failed: injected failure"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // The healthy partitions are complete streams: a failed write closes no
    // frontier, so the other captures run to their real end.
    let log: Arc<dyn LogBackend> = Arc::new(FileLog::new(dir.path()));
    for partition in [0, 2] {
        let summary = inspect_partition(log.as_ref(), "w", partition, Duration::from_secs(5)).unwrap();
        assert!(summary.complete && summary.sessions == 1, "{summary}");
        assert_eq!(replay_one(log.as_ref(), "w", partition), common::Fingerprint::expected(1, 50_000));
    }
    let failed = inspect_partition(log.as_ref(), "w", 1, Duration::from_secs(5)).unwrap();
    assert!(!failed.complete, "{failed}");
}

/// Replays one partition outside timely; panics if the replay fails.
fn replay_one(log: &dyn LogBackend, topic: &str, partition: u32) -> common::Fingerprint {
    use timely::dataflow::operators::capture::event::{Event, EventIterator};
    let consumer = EventConsumer::<u64, Vec<u64>>::open(log, topic, partition, Duration::from_secs(5)).unwrap();
    let mut consumer = consumer.idle_timeout(Duration::from_secs(5));
    let handle = consumer.status();
    let mut fp = common::Fingerprint::default();
    while !handle.is_complete() {
        assert!(handle.error().is_none(), "{:?}", handle.error());
        if let Some(Event::Messages(_, data)) = consumer.next().map(|e| e.into_owned()) {
            data.into_iter().for_each(|x| fp.add(x));
        }
    }
    fp
}

#[test]
fn helpers_refuse_an_existing_topic_on_every_worker_without_overwrite() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn LogBackend> = Arc::new(FileLog::new(dir.path()));
    common::capture(log.clone(), "full", 2, 10);
    let error = execute(timely::Config::process(2), move |w| {
        capture(w, log.as_ref(), "full", CaptureOptions::default()).map(|_: EventProducer<u64, Vec<u64>>| ())
    })
    .unwrap_err();
    assert!(error.to_string().contains("already holds data"), "{error}");
}

#[test]
fn reading_a_replay_error_twice_gives_the_same_error() {
    use timely::dataflow::operators::capture::event::EventIterator;
    let _deadline = common::deadline();
    let (_dir, log) = corrupt_topic();
    let mut consumer = EventConsumer::<u64, Vec<u64>>::open(log.as_ref(), "c", 1, Duration::from_secs(5)).unwrap();
    let handle = consumer.status();
    while !handle.is_failed() {
        assert!(!handle.is_complete(), "the corrupt partition cannot complete");
        consumer.next();
    }
    let (first, second) = (handle.error().unwrap(), handle.error().unwrap());
    assert!(matches!(first, Error::Corrupt { offset: 10, .. }), "{first}");
    assert!(matches!(second, Error::Corrupt { offset: 10, .. }), "{second}");
    assert_eq!(first.to_string(), second.to_string());
    assert!(first.to_string().contains("topic 'c' partition 1 offset 10"), "{first}");
    assert!(handle.is_failed() && !handle.is_complete());
}

/// A replay that fails closes its frontier, which downstream looks like the
/// end of the stream: a capture fed by it must not store that as its end
/// (no final record, no final commit), on any worker.
#[test]
fn a_capture_fed_by_a_failed_replay_is_not_stored_as_complete() {
    use timely_kafka::exactly_once::{self, CommitOptions, StreamStart};
    use timely_kafka::inspect::inspect_topic;
    let _deadline = common::deadline();
    let (dir, log) = corrupt_topic();
    for exactly_once in [false, true] {
        let out = if exactly_once { "out-eo" } else { "out" };
        let replayed = log.clone();
        let error = execute(timely::Config::process(3), move |w| {
            let options = ReplayOptions { idle_timeout: Some(Duration::from_secs(20)), ..Default::default() };
            let streams: Vec<EventConsumer<u64, Vec<u64>>> = replay(w, replayed.as_ref(), "c", options)?;
            let producer = if exactly_once {
                let settings = CommitOptions { commit_interval: Duration::ZERO, ..Default::default() };
                let options = CaptureOptions::default();
                exactly_once::capture(w, replayed.as_ref(), out, options, settings, StreamStart::New)?.0
            } else {
                capture(w, replayed.as_ref(), out, CaptureOptions::default())?
            };
            let handle = producer.status();
            let probe = w.dataflow::<u64, _, _>(|s| {
                let replayed = streams.replay_into(s).exchange(|x| *x);
                replayed.clone().capture_into(producer);
                replayed.probe().0
            });
            w.step_while(|| !probe.done());
            // The replay's failure, or the consequence recorded in the capture.
            assert!(!handle.is_complete());
            assert!(handle.outcome().is_err());
            Ok(())
        })
        .expect_err("the corrupt partition fails the computation");
        assert!(matches!(error, Error::Corrupt { offset: 10, .. }), "the cause comes back, not a consequence: {error}");
        let file_log = FileLog::new(dir.path());
        let summaries = inspect_topic(&file_log, out, Duration::from_secs(5)).unwrap();
        assert_eq!(summaries.len(), 3);
        for summary in summaries {
            assert!(!summary.complete, "{out}: stored as complete: {summary}");
            assert_eq!(summary.exactly_once.is_some(), exactly_once, "{summary}");
        }
    }
}

/// What the child processes run: plain timely calls, as the README's
/// library example, over a corrupt partition, with four workers (one without
/// a partition). Does nothing unless started by a test below.
#[test]
fn child_plain_timely_replay() {
    let Ok(mode) = std::env::var("TK_FAILURE_CHILD") else { return };
    let dir = std::path::PathBuf::from(std::env::var("TK_FAILURE_DIR").unwrap());
    if mode != "default" {
        timely_kafka::exit_on_unhandled_failure("child");
    }
    let log = FileLog::new(dir);
    if mode == "opt-in-execute" {
        // The failure comes back as execute's Err: handled, whatever the
        // program then does with it.
        let error = helper_replay(Arc::new(log), 4).unwrap_err();
        println!("child: execute returned: {error}");
        return;
    }
    let outcomes = timely::execute(timely::Config::process(4), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let consumers: Vec<EventConsumer<u64, Vec<u64>>> = timely_kafka::StreamLayout::assigned(3, index, peers)
            .map(|p| EventConsumer::open(&log, "c", p, Duration::from_secs(5)).unwrap())
            .collect();
        let handles: Vec<_> = consumers.iter().map(|c| c.status()).collect();
        let probe = worker.dataflow::<u64, _, _>(|s| consumers.replay_into(s).exchange(|x| *x).probe().0);
        worker.step_while(|| !probe.done());
        handles
    })
    .unwrap()
    .join();
    println!("child: {} workers ended", outcomes.len());
    if mode == "opt-in" {
        // Reading the handles does not handle the failure: only execute's
        // Err does.
        for handle in outcomes.iter().flatten().flatten() {
            if let Some(error) = handle.error() {
                assert_eq!(Some(error.to_string()), handle.error().map(|e| e.to_string()));
                println!("child: a handle says: {error}");
            }
        }
    }
}

fn run_child(mode: &str) -> std::process::Output {
    let (dir, _log) = corrupt_topic();
    Command::new(std::env::current_exe().unwrap())
        .args(["child_plain_timely_replay", "--exact", "--nocapture", "--test-threads=1"])
        .env("TK_FAILURE_CHILD", mode)
        .env("TK_FAILURE_DIR", dir.path())
        .output()
        .unwrap()
}

/// The stderr lines that report an error.
fn error_lines(output: &std::process::Output) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr.lines().filter(|line| line.contains("error:")).map(String::from).collect()
}

#[test]
fn by_default_a_failure_prints_one_line_and_leaves_the_exit_status_alone() {
    let _deadline = common::deadline();
    let output = run_child("default");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let errors = error_lines(&output);
    assert!(stdout.contains("child: 4 workers ended"), "every worker ended: {stdout} {errors:?}");
    assert_eq!(output.status.code(), Some(0), "a program that never checks still exits 0: {errors:?}");
    assert_eq!(errors.len(), 1, "printed once: {errors:?}");
    assert!(
        errors[0].starts_with("timely-kafka: error: replay failed: topic 'c' partition 1 offset 10: "),
        "{errors:?}"
    );
}

#[test]
fn with_the_opt_in_an_unhandled_failure_ends_the_process_with_status_1() {
    let _deadline = common::deadline();
    let output = run_child("opt-in");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let errors = error_lines(&output);
    assert!(stdout.contains("child: 4 workers ended"), "{stdout} {errors:?}");
    assert!(stdout.contains("child: a handle says: topic 'c' partition 1 offset 10"), "{stdout}");
    assert_eq!(output.status.code(), Some(1), "{stdout} {errors:?}");
    // The program reports it, under its own name; the library does not too.
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("child: error: replay failed: topic 'c' partition 1 offset 10: "), "{errors:?}");
}

#[test]
fn with_the_opt_in_a_failure_execute_returned_is_the_programs_business() {
    let _deadline = common::deadline();
    let output = run_child("opt-in-execute");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let errors = error_lines(&output);
    assert!(stdout.contains("child: execute returned: topic 'c' partition 1 offset 10"), "{stdout} {errors:?}");
    assert_eq!(output.status.code(), Some(0), "{stdout} {errors:?}");
    assert_eq!(errors, Vec::<String>::new());
}

/// A program's own error type through `try_execute`: the error a worker
/// returned comes back as that value (not a rendering), and the computation
/// still ends on every worker; a replay failure arrives through `From`.
#[test]
fn try_execute_returns_the_programs_own_error_and_converts_the_crates() {
    let _deadline = common::deadline();
    #[derive(Debug, PartialEq)]
    enum AppError {
        Mine(u32),
        Stream(String),
    }
    impl std::fmt::Display for AppError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }
    impl From<timely_kafka::Error> for AppError {
        fn from(error: timely_kafka::Error) -> Self {
            AppError::Stream(error.to_string())
        }
    }
    let mine = timely_kafka::try_execute(timely::Config::process(3), |worker| {
        if worker.index() == 2 {
            return Err(AppError::Mine(7));
        }
        Ok(worker.index())
    });
    assert_eq!(mine, Err(AppError::Mine(7)));

    let dir = tempfile::tempdir().unwrap();
    let log = timely_kafka::FileLog::new(dir.path());
    let converted = timely_kafka::try_execute(timely::Config::process(2), move |worker| {
        let _streams: Vec<timely_kafka::EventConsumer<u64, Vec<u64>>> =
            timely_kafka::replay(worker, &log, "missing", timely_kafka::ReplayOptions::default())?;
        Ok::<_, AppError>(())
    });
    match converted {
        Err(AppError::Stream(message)) => assert!(message.contains("missing"), "{message}"),
        other => panic!("expected the crate's error converted, got {other:?}"),
    }
}
