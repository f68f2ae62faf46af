//! Shared by the exactly-once tests: captures that crash at a chosen record,
//! resumes, and replays that check every record once and the frontier.
//!
//! Worker w of n generates w, w + n, ... (`timely_kafka_cli::numbers`), so the whole
//! capture is `0..count * n` and every partition holds different records.
//! With `exchange` the capture sees them after an exchange by key (the
//! record's index on its worker, `x / n`, modulo n): records generated on
//! one worker are captured on another, as after a keyed `exchange`, a
//! `reduce` or a join.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use timely::dataflow::operators::capture::Replay;
use timely::dataflow::operators::Exchange;
use timely::dataflow::operators::{Capture, Inspect, Probe};
use timely_kafka::error::TopicPartition;
use timely_kafka::exactly_once::ResumePoint;
use timely_kafka::exactly_once::StreamStart;
use timely_kafka::exactly_once::{self, CommitOptions};
use timely_kafka::log::{LogBackend, PartitionWriter, WriterHooks};
use timely_kafka::status::CaptureStats;
use timely_kafka::{execute, CaptureOptions, EventConsumer, EventProducer, Result};
use timely_kafka_cli::numbers::{timed_numbers, Numbers};

/// Commits as often as the frontier moves, so crashes land between many commits.
pub fn eager() -> CommitOptions {
    CommitOptions { commit_interval: Duration::ZERO, max_uncommitted_bytes: 0 }
}

/// Records a crashed writer did not store: (partition, record).
pub type Held = Arc<Mutex<Vec<(u32, Vec<u8>)>>>;

/// A writer that stops storing after `left` records, as if its process had
/// died there (the producer does not notice: nothing more reaches the log).
/// What it does not store goes to `held`.
pub struct CrashAfter {
    pub inner: Box<dyn PartitionWriter>,
    pub left: u64,
    pub held: Held,
    /// Drops the record with this index (counting from 0) but stores the
    /// ones after it: a broker that acknowledged a batch it never stored.
    pub lose: Option<u64>,
    pub appended: u64,
}

impl PartitionWriter for CrashAfter {
    fn partition(&self) -> &TopicPartition {
        self.inner.partition()
    }
    fn append(&mut self, record: &[u8]) -> Result<()> {
        if self.left == 0 {
            let partition = self.inner.partition().partition;
            self.held.lock().unwrap().push((partition, record.to_vec()));
            return Ok(());
        }
        self.left -= 1;
        self.appended += 1;
        if self.lose == Some(self.appended - 1) {
            return Ok(());
        }
        self.inner.append(record)
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
    fn publish(&mut self) -> Result<()> {
        self.inner.publish()
    }
    fn max_record_bytes(&self) -> usize {
        self.inner.max_record_bytes()
    }
}

impl WriterHooks for CrashAfter {
    fn check_stored(&mut self) -> Result<()> {
        // A crashed process checks nothing; the records it held are not sent.
        if self.left == 0 {
            return Ok(());
        }
        self.inner.check_stored()
    }
}

/// The numbers each capturing worker sends: `count` numbers, `per_time` per time.
pub fn spec(count: u64, per_time: u64) -> Numbers {
    Numbers { count, per_time: Some(per_time), from_time: 0, rate: None }
}

/// The generated numbers, exchanged by key first if `exchange`.
pub fn numbers<'scope>(
    scope: timely::dataflow::Scope<'scope, u64>,
    spec: Numbers,
    exchange: bool,
) -> timely::dataflow::Stream<'scope, u64, Vec<u64>> {
    let peers = scope.peers() as u64;
    let generated = timed_numbers(scope, spec);
    if exchange {
        generated.exchange(move |x| (x / peers) % peers)
    } else {
        generated
    }
}

/// Creates `topic` (one partition per worker) and captures exactly-once;
/// worker w's partition stops storing after `crash_after[w]` records.
pub fn capture_crashing(log: Arc<dyn LogBackend>, topic: &str, spec: Numbers, crash_after: Vec<Option<u64>>) {
    capture_losing(log, topic, spec, crash_after, Vec::new())
}

/// [`capture_crashing`], and worker w's partition also loses record `lose[w]`.
pub fn capture_losing(
    log: Arc<dyn LogBackend>,
    topic: &str,
    spec: Numbers,
    crash_after: Vec<Option<u64>>,
    lose: Vec<Option<u64>>,
) {
    let held = Arc::new(Mutex::new(Vec::new()));
    let running = start_capture_losing(log, topic, spec, crash_after, lose, held, false);
    running.join().unwrap().into_iter().for_each(|r| r.unwrap());
}

/// [`capture_crashing`] of a dataflow that exchanges records by key
/// before capturing them.
pub fn capture_exchanged_crashing(log: Arc<dyn LogBackend>, topic: &str, spec: Numbers, crash_after: Vec<Option<u64>>) {
    let held = Arc::new(Mutex::new(Vec::new()));
    let running = start_capture_losing(log, topic, spec, crash_after, Vec::new(), held, true);
    running.join().unwrap().into_iter().for_each(|r| r.unwrap());
}

/// Starts an exactly-once capture in the background (see
/// [`capture_crashing`]); records a crashed partition does not store are
/// kept in `held` as (partition, record), for a test to write later, as a
/// zombie would.
pub fn start_capture(
    log: Arc<dyn LogBackend>,
    topic: &str,
    spec: Numbers,
    crash_after: Vec<Option<u64>>,
    held: Held,
) -> std::thread::JoinHandle<Vec<std::result::Result<(), String>>> {
    start_capture_losing(log, topic, spec, crash_after, Vec::new(), held, false)
}

fn start_capture_losing(
    log: Arc<dyn LogBackend>,
    topic: &str,
    spec: Numbers,
    crash_after: Vec<Option<u64>>,
    lose: Vec<Option<u64>>,
    held: Held,
    exchange: bool,
) -> std::thread::JoinHandle<Vec<std::result::Result<(), String>>> {
    let workers = crash_after.len();
    log.create_topic(topic, workers as u32, true).unwrap();
    let topic = topic.to_string();
    let crash_after = Arc::new(crash_after);
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let inner = log.writer(&topic, index as u32).unwrap();
        let left = crash_after[index].unwrap_or(u64::MAX);
        let lose = lose.get(index).copied().flatten();
        let writer = CrashAfter { inner, left, held: held.clone(), lose, appended: 0 };
        let producer =
            EventProducer::<u64, Vec<u64>, _>::exactly_once(writer, index as u32, workers as u32, eager()).unwrap();
        let handle = producer.status();
        worker.dataflow::<u64, _, _>(|scope| numbers(scope, spec, exchange).capture_into(producer));
        while worker.step() {}
        if let Some(error) = handle.error() {
            panic!("{error}");
        }
    })
    .unwrap();
    std::thread::spawn(move || guards.join())
}

/// Writes what crashed captures held back, after everything else: a zombie
/// that was paused and wakes up.
pub fn release_zombies(log: &dyn LogBackend, topic: &str, held: &Mutex<Vec<(u32, Vec<u8>)>>) -> usize {
    let held = std::mem::take(&mut *held.lock().unwrap());
    let mut writers = std::collections::HashMap::new();
    for (partition, record) in &held {
        let writer = writers.entry(*partition).or_insert_with(|| log.writer(topic, *partition).unwrap());
        writer.append(record).unwrap();
    }
    for writer in writers.values_mut() {
        writer.flush().unwrap();
    }
    held.len()
}

/// Resumes every worker's stream with the collective helper
/// (`exactly_once::capture`) and runs the capture to completion, every input
/// restarted at the frontier it returns; returns each worker's resume point
/// (`committed` empty: that stream was already complete), or the refusal.
pub fn resume_capture(
    log: Arc<dyn LogBackend>,
    topic: &str,
    spec: Numbers,
    workers: usize,
) -> std::result::Result<Vec<ResumePoint<u64>>, String> {
    let resumed = resume_capture_with(log, topic, spec, workers, false)?;
    Ok(resumed.into_iter().map(|(point, _)| point).collect())
}

/// [`resume_capture`]; `exchange`: the dataflow exchanges by key before
/// capturing, as the capture it resumes did. Also returns each worker's
/// capture totals.
pub fn resume_capture_with(
    log: Arc<dyn LogBackend>,
    topic: &str,
    spec: Numbers,
    workers: usize,
    exchange: bool,
) -> std::result::Result<Vec<(ResumePoint<u64>, CaptureStats)>, String> {
    let topic = topic.to_string();
    let results = execute(timely::Config::process(workers), move |worker| {
        let options = CaptureOptions::default();
        let (producer, point) =
            exactly_once::capture(worker, log.as_ref(), &topic, options.clone(), eager(), StreamStart::Resume)?;
        let handle = producer.status();
        // An empty restart frontier: every stream is complete (refused
        // above), so some time is always left to regenerate here.
        let from_time = *point.restart_from.elements().first().expect("a stream to resume");
        let spec = Numbers { from_time, ..spec };
        worker.dataflow::<u64, _, _>(|scope| numbers(scope, spec, exchange).capture_into(producer));
        while worker.step() {}
        let stats = handle.outcome()?;
        Ok((point, stats))
    });
    match results {
        Ok(points) => Ok(points),
        // Nothing was left to resume: every stream had completed.
        Err(error) if error.to_string().contains("every stream is complete") => Ok(Vec::new()),
        Err(error) => Err(error.to_string()),
    }
}

/// Crashes every worker's partition at a different point of a capture that
/// exchanges records before capturing them, resumes (every input from the
/// meet of the committed frontiers), and checks the replay equals an
/// uninterrupted run; returns the committed frontiers the crashes left.
pub fn exchange_crash_and_resume(log: Arc<dyn LogBackend>, topic: &str, crash_after: Vec<Option<u64>>) {
    let spec = spec(3_000, 29);
    let workers = crash_after.len();
    capture_exchanged_crashing(log.clone(), topic, spec, crash_after.clone());
    let resumed = resume_capture_with(log.clone(), topic, spec, workers, true).unwrap();
    assert_eq!(resumed.len(), workers, "{crash_after:?}: a stream to resume");
    let committed: Vec<Option<u64>> = resumed.iter().map(|(p, _)| p.committed.elements().first().copied()).collect();
    let earliest = committed.iter().flatten().min().copied();
    for (point, stats) in &resumed {
        assert_eq!(point.restart_from.elements().first().copied(), earliest, "{crash_after:?}: {committed:?}");
        // The input restarted before this partition's own frontier: what
        // it had committed came again and was dropped, not written.
        let own = point.committed.elements().first().copied();
        if own.is_none_or(|own| earliest.is_some_and(|earliest| earliest < own)) {
            assert!(stats.dropped > 0, "{crash_after:?}: {committed:?}: {stats:?}");
        }
        if point.committed.is_empty() {
            assert_eq!((stats.frames, stats.records), (0, 0), "a complete stream stays as it was: {stats:?}");
        }
    }
    let expected = expected(spec, workers as u64);
    for replay_workers in [1, 2] {
        assert_eq!(
            replay(log.clone(), topic, workers as u32, replay_workers),
            expected,
            "{crash_after:?}: {committed:?}"
        );
    }
}

/// What a replay delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    pub count: u64,
    pub sum: u64,
    /// Sum of a hash of every record: a record twice and another lost is caught.
    pub fingerprint: u64,
    pub per_time: BTreeMap<u64, u64>,
}

impl Delivered {
    fn add(&mut self, time: u64, record: u64) {
        self.count += 1;
        self.sum += record;
        self.fingerprint = self.fingerprint.wrapping_add(timely_kafka_cli::fingerprint::mix(record));
        *self.per_time.entry(time).or_default() += 1;
    }
}

/// What `workers` uninterrupted captures of `spec` deliver: worker w's
/// i-th number `w + workers * i` at time `spec.time_of(i)`.
pub fn expected(spec: Numbers, workers: u64) -> Delivered {
    let mut delivered = Delivered::default();
    for i in 0..spec.count {
        for w in 0..workers {
            delivered.add(spec.time_of(i), w + workers * i);
        }
    }
    delivered
}

/// Replays every partition of `topic` with `workers` workers; checks that
/// no record arrives at a time the replayed frontier has already passed.
pub fn replay(log: Arc<dyn LogBackend>, topic: &str, partitions: u32, workers: usize) -> Delivered {
    replay_with_window(log, topic, partitions, workers, 16 << 20)
}

/// [`replay`] keeping at most `window` bytes of uncommitted records in
/// memory (0: every delivery re-reads from the log).
pub fn replay_with_window(
    log: Arc<dyn LogBackend>,
    topic: &str,
    partitions: u32,
    workers: usize,
    window: usize,
) -> Delivered {
    let delivered = Arc::new(Mutex::new(Delivered::default()));
    let shared = delivered.clone();
    let topic = topic.to_string();
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index() as u32, worker.peers() as u32);
        let streams: Vec<EventConsumer<u64, Vec<u64>>> = (0..partitions)
            .filter(|p| p % peers == index)
            .map(|p| {
                EventConsumer::open(log.as_ref(), &topic, p, Duration::from_secs(5))
                    .unwrap()
                    .idle_timeout(Duration::from_secs(20))
                    .replay_window(window)
            })
            .collect();
        let shared = shared.clone();
        let mut frontier = vec![0u64];
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            streams
                .replay_into(scope)
                .inspect_core(move |event| match event {
                    Ok((stamp, data)) => {
                        let time = *stamp.as_singleton().expect("one time per batch");
                        assert!(
                            frontier.iter().any(|f| *f <= time),
                            "record at {time} behind the frontier {frontier:?}"
                        );
                        let mut delivered = shared.lock().unwrap();
                        for x in data.iter() {
                            delivered.add(time, *x);
                        }
                    }
                    Err(new_frontier) => {
                        assert!(
                            new_frontier.iter().all(|t| frontier.iter().any(|f| f <= t)),
                            "frontier moved back from {frontier:?} to {new_frontier:?}"
                        );
                        frontier = new_frontier.to_vec();
                    }
                })
                .probe()
                .0
        });
        worker.step_while(|| !probe.done());
    })
    .unwrap()
    .join()
    .into_iter()
    .for_each(|r| r.unwrap());
    let delivered = delivered.lock().unwrap().clone();
    delivered
}

/// Writes a copy of the last record of `topic`/`partition` every few
/// milliseconds until `stop`: a writer whose records replay ignores (the
/// epoch they belong to broke, or was superseded) but that keeps the
/// partition busy. Returns how many it wrote.
pub fn keep_writing_ignored_records(
    log: Arc<dyn LogBackend>,
    topic: &str,
    partition: u32,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let topic = topic.to_string();
    std::thread::spawn(move || {
        let mut reader = log.reader(&topic, partition, 0).unwrap();
        let mut last = None;
        while let Some(record) = reader.poll_stored(Duration::from_secs(5)).unwrap() {
            last = Some(record.payload.to_vec());
        }
        let last = last.expect("a stored record to copy");
        let mut writer = log.writer(&topic, partition).unwrap();
        let mut written = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            writer.append(&last).unwrap();
            writer.flush().unwrap();
            written += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        written
    })
}

/// Reads `topic`/`partition` with a consumer whose idle timeout is
/// `idle`, outside timely, until it completes or fails or `bound` passes;
/// returns its error, if it failed.
pub fn replay_until_done_or(
    log: &dyn LogBackend,
    topic: &str,
    partition: u32,
    idle: Duration,
    bound: Duration,
) -> std::result::Result<Option<String>, String> {
    use timely::dataflow::operators::capture::event::EventIterator;
    let mut consumer =
        EventConsumer::<u64, Vec<u64>>::open(log, topic, partition, Duration::from_secs(5)).unwrap().idle_timeout(idle);
    let handle = consumer.status();
    let started = std::time::Instant::now();
    while !handle.is_complete() && !handle.is_failed() {
        if started.elapsed() > bound {
            return Err(format!("still waiting after {bound:?} ({:?})", handle.stats()));
        }
        let _ = consumer.next();
    }
    Ok(handle.error().map(|e| e.to_string()))
}
