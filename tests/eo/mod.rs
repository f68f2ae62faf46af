//! Shared by the exactly-once tests: captures that crash at a chosen record,
//! resumes, and replays that check every record once and the frontier.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use timely::dataflow::operators::capture::Replay;
use timely::dataflow::operators::{Capture, Inspect, Probe};
use timely_kafka::capture::exactly_once::ExactlyOnce;
use timely_kafka::capture::resume::{resume, ResumePoint};
use timely_kafka::cli::numbers::{timed_numbers, Numbers};
use timely_kafka::log::{LogBackend, PartitionWriter};
use timely_kafka::{Bincode, CodecId, EventConsumer, EventProducer, PartitionId, Result};

/// Commits as often as the frontier moves, so crashes land between many commits.
pub fn eager() -> ExactlyOnce {
    ExactlyOnce { commit_interval: Duration::ZERO, max_uncommitted_bytes: 0 }
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
    fn partition(&self) -> &PartitionId {
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

/// The numbers each capturing worker sends: `count` numbers, `per_time` per time.
pub fn spec(count: u64, per_time: u64) -> Numbers {
    Numbers { count, per_time: Some(per_time), from_time: 0, rate: None }
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
    let running = start_capture_losing(log, topic, spec, crash_after, lose, held);
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
    start_capture_losing(log, topic, spec, crash_after, Vec::new(), held)
}

fn start_capture_losing(
    log: Arc<dyn LogBackend>,
    topic: &str,
    spec: Numbers,
    crash_after: Vec<Option<u64>>,
    lose: Vec<Option<u64>>,
    held: Held,
) -> std::thread::JoinHandle<Vec<std::result::Result<(), String>>> {
    let workers = crash_after.len();
    log.create_topic(topic, workers as u32, CodecId::Bincode, true).unwrap();
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
        let handle = producer.handle();
        worker.dataflow::<u64, _, _>(|scope| timed_numbers(scope, spec).capture_into(producer));
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

/// Resumes every worker's stream (all partitions opened first, so a
/// refusal is an error here rather than a hung computation) and runs the
/// capture to completion; returns each worker's resume point (`None`: that
/// stream was already complete), or the refusal.
pub fn resume_capture(
    log: Arc<dyn LogBackend>,
    topic: &str,
    spec: Numbers,
    workers: usize,
) -> std::result::Result<Vec<Option<ResumePoint<u64>>>, String> {
    let mut opened = Vec::new();
    for index in 0..workers as u32 {
        let options = eager();
        let timeout = Duration::from_secs(10);
        let resumed =
            resume::<u64, Vec<u64>, Bincode>(log.as_ref(), topic, index, index, workers as u32, options, timeout);
        match resumed {
            Ok(opened_one) => opened.push(Some(opened_one)),
            Err(timely_kafka::Error::AlreadyComplete(_)) => opened.push(None),
            Err(error) => return Err(error.to_string()),
        }
    }
    let points: Vec<Option<ResumePoint<u64>>> = opened.iter().map(|o| o.as_ref().map(|(_, p)| p.clone())).collect();
    let producers =
        Arc::new(Mutex::new(opened.into_iter().map(|o| o.map(|(producer, _)| producer)).collect::<Vec<_>>()));
    let from: Vec<Option<u64>> =
        points.iter().map(|p| p.as_ref().map(|p| p.frontier.elements().first().copied().unwrap_or(u64::MAX))).collect();
    timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        // A worker whose stream is complete builds the same dataflow (timely
        // needs identical dataflows on every worker), capturing nothing.
        let producer = producers.lock().unwrap()[index].take();
        let spec = Numbers { from_time: from[index].unwrap_or(spec.time_of(spec.count) + 1), ..spec };
        worker.dataflow::<u64, _, _>(|scope| {
            let numbers = timed_numbers(scope, spec);
            match producer {
                Some(producer) => numbers.capture_into(producer),
                None => numbers.capture_into(std::sync::mpsc::channel().0),
            }
        });
    })
    .unwrap()
    .join()
    .into_iter()
    .for_each(|r| r.unwrap());
    Ok(points)
}

/// What a replay delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    pub count: u64,
    pub sum: u64,
    pub per_time: BTreeMap<u64, u64>,
}

/// What `workers` uninterrupted captures of `spec` deliver.
pub fn expected(spec: Numbers, workers: u64) -> Delivered {
    let mut delivered = Delivered::default();
    for i in 0..spec.count {
        delivered.count += workers;
        delivered.sum += i * workers;
        *delivered.per_time.entry(spec.time_of(i)).or_default() += workers;
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
                            delivered.count += 1;
                            delivered.sum += x;
                            *delivered.per_time.entry(time).or_default() += 1;
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
