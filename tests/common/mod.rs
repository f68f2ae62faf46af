//! Shared helpers for the integration tests: capture `0..count` per worker,
//! replay with any number of workers, and fingerprints of what was seen.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use timely::dataflow::operators::capture::Replay;
use timely::dataflow::operators::{Capture, Input, Inspect, Probe, ToStream};
use timely::dataflow::InputHandle;
use timely_kafka::log::LogBackend;
use timely_kafka::log::{PartitionReader, PartitionWriter};
use timely_kafka::{EventConsumer, EventProducer};

pub mod metrics;
pub mod records;
pub mod short_end_proxy;

/// A fingerprint of a multiset of u64 records: count, sum, and a sum of
/// mixed hashes (so a changed record is caught even if the sum matches).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub count: u64,
    pub sum: u64,
    pub hash: u64,
}

impl Fingerprint {
    pub fn add(&mut self, value: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(value);
        self.hash = self.hash.wrapping_add(mix(value));
    }
    pub fn merge(self, other: Fingerprint) -> Fingerprint {
        Fingerprint {
            count: self.count + other.count,
            sum: self.sum.wrapping_add(other.sum),
            hash: self.hash.wrapping_add(other.hash),
        }
    }
    /// The fingerprint of `workers` copies of `0..count`.
    pub fn expected(workers: u64, count: u64) -> Fingerprint {
        let mut fp = Fingerprint::default();
        for _ in 0..workers {
            for value in 0..count {
                fp.add(value);
            }
        }
        fp
    }
}

/// What `capture_send COUNT -w WORKERS` captures: worker w sends w, w +
/// workers, ..., so the whole capture is `0..workers * count`.
pub fn capture_send_numbers(workers: u64, count: u64) -> Fingerprint {
    let mut fp = Fingerprint::default();
    (0..workers * count).for_each(|value| fp.add(value));
    fp
}

/// What worker `worker` of `capture_send COUNT -w WORKERS` captures into
/// its partition: `worker, worker + workers, ...`, `count` numbers.
pub fn capture_send_partition(worker: u64, workers: u64, count: u64) -> Fingerprint {
    let mut fp = Fingerprint::default();
    (0..count).for_each(|i| fp.add(worker + i * workers));
    fp
}

/// (records, sum, fingerprint) from a `capture_recv` final stdout line.
pub fn recv_fingerprint(stdout: &[u8]) -> Fingerprint {
    let stdout = String::from_utf8_lossy(stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let value = |key: &str| {
        last.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in final line {last:?}"))
    };
    Fingerprint {
        count: value("records").parse().unwrap(),
        sum: value("sum").parse().unwrap(),
        hash: u64::from_str_radix(value("fingerprint"), 16).unwrap(),
    }
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1330_11EB);
    x ^ (x >> 31)
}

fn config(workers: usize) -> timely::Config {
    if workers == 1 {
        timely::Config::thread()
    } else {
        timely::Config::process(workers)
    }
}

/// Creates `topic` with one partition per worker and captures `0..count` on each.
pub fn capture(log: Arc<dyn LogBackend>, topic: &str, workers: usize, count: u64) {
    log.create_topic(topic, workers as u32, false).unwrap();
    let topic = topic.to_string();
    let failed = PeerFailure::default();
    let guards = timely::execute(config(workers), move |worker| {
        let _failure = failed.flag_on_panic();
        let (index, peers) = (worker.index() as u32, worker.peers() as u32);
        let producer = EventProducer::new(log.writer(&topic, index).unwrap(), index, peers).unwrap();
        let handle = producer.status();
        worker
            .dataflow::<u64, _, _>(|scope| (0..count).to_stream(scope).container::<Vec<u64>>().capture_into(producer));
        while worker.step() {
            failed.check();
        }
        handle.outcome().unwrap();
    })
    .unwrap();
    for result in guards.join() {
        result.unwrap();
    }
}

/// Replays every partition of `topic` with `workers` workers.
pub fn replay(log: Arc<dyn LogBackend>, topic: &str, workers: usize) -> Fingerprint {
    let partitions = log.topic_info(topic).unwrap().unwrap().partitions;
    let topic = topic.to_string();
    let failed = PeerFailure::default();
    let guards = timely::execute(config(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let consumers: Vec<EventConsumer<u64, Vec<u64>>> =
            timely_kafka::StreamLayout::assigned(partitions, index, peers)
                .map(|p| {
                    EventConsumer::new(log.reader(&topic, p, 0).unwrap())
                        .idle_timeout(std::time::Duration::from_secs(20))
                })
                .collect();
        let handles: Vec<_> = consumers.iter().map(|c| c.status()).collect();
        let _failure = failed.flag_on_panic();
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Fingerprint::default()));
        let sink = seen.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            consumers.replay_into(scope).inspect(move |x| sink.borrow_mut().add(*x)).probe().0
        });
        while !probe.done() {
            worker.step();
            failed.check();
        }
        for handle in handles {
            assert!(handle.error().is_none(), "{:?}", handle.error());
        }
        let fp = *seen.borrow();
        fp
    })
    .unwrap();
    let results = guards.join();
    if let Some(error) = results.iter().find_map(|r| r.as_ref().err()) {
        panic!("replay failed: {error}");
    }
    results.into_iter().map(|r| r.unwrap()).fold(Fingerprint::default(), Fingerprint::merge)
}

const TIMES: u64 = 100;
const WORKERS: usize = 3;

/// Records at times 0..100 from three workers: worker w sends `t * 10 + w`
/// `(t % 7) + 1` times at time t.
fn per_time_counts() -> BTreeMap<u64, u64> {
    (0..TIMES).map(|t| (t, WORKERS as u64 * ((t % 7) + 1))).collect()
}

/// Captures records at 100 times from three workers, replays them with two,
/// and checks per-time counts, that no record arrives behind the replayed
/// frontier, and that the frontier passes every time.
pub fn many_timestamps(log: Arc<dyn LogBackend>, topic: &'static str) {
    log.create_topic(topic, WORKERS as u32, false).unwrap();

    let capture_log = log.clone();
    let failed = PeerFailure::default();
    timely::execute(timely::Config::process(WORKERS), move |worker| {
        let _failure = failed.flag_on_panic();
        let (index, peers) = (worker.index() as u32, worker.peers() as u32);
        let producer = EventProducer::new(capture_log.writer(topic, index).unwrap(), index, peers).unwrap();
        let mut input = InputHandle::new();
        worker
            .dataflow::<u64, _, _>(|scope| scope.input_from(&mut input).container::<Vec<u64>>().capture_into(producer));
        for t in 0..TIMES {
            for _ in 0..(t % 7) + 1 {
                input.send(t * 10 + index as u64);
            }
            input.advance_to(t + 1);
            worker.step();
        }
        input.close();
        while worker.step() {
            failed.check();
        }
    })
    .unwrap()
    .join()
    .into_iter()
    .for_each(|r| r.unwrap());

    // Replay with two workers and watch times close as the frontier passes them.
    let results = timely::execute(timely::Config::process(2), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let consumers: Vec<EventConsumer<u64, Vec<u64>>> =
            timely_kafka::StreamLayout::assigned(WORKERS as u32, index, peers)
                .map(|p| {
                    EventConsumer::new(log.reader(topic, p, 0).unwrap())
                        .idle_timeout(std::time::Duration::from_secs(20))
                })
                .collect();
        let state = std::rc::Rc::new(std::cell::RefCell::new((BTreeMap::<u64, u64>::new(), Vec::<u64>::new(), 0u64)));
        let watch = state.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            consumers
                .replay_into(scope)
                .inspect_core(move |event| {
                    let (counts, frontier, late) = &mut *watch.borrow_mut();
                    match event {
                        Ok((stamp, data)) => {
                            let t = *stamp.as_singleton().unwrap();
                            if !frontier.iter().any(|f| f <= &t) {
                                *late += 1; // a record behind the frontier
                            }
                            for x in data.iter() {
                                assert_eq!(x / 10, t, "record {x} at the wrong time {t}");
                            }
                            *counts.entry(t).or_default() += data.len() as u64;
                        }
                        Err(new_frontier) => *frontier = new_frontier.to_vec(),
                    }
                })
                .probe()
                .0
        });
        state.borrow_mut().1 = vec![0];
        while !probe.done() {
            worker.step();
        }
        let (counts, frontier, late) = state.borrow().clone();
        (counts, frontier, late)
    })
    .unwrap()
    .join();

    let mut counts = BTreeMap::<u64, u64>::new();
    for result in results {
        let (worker_counts, frontier, late) = result.unwrap();
        assert_eq!(late, 0, "records arrived after the frontier passed their time");
        assert!(frontier.is_empty(), "the replayed frontier did not pass every time: {frontier:?}");
        for (t, n) in worker_counts {
            *counts.entry(t).or_default() += n;
        }
    }
    assert_eq!(counts, per_time_counts());
}

/// Every capturing worker's status.
pub type CaptureStatuses = Arc<std::sync::Mutex<Vec<timely_kafka::status::Status<timely_kafka::status::CaptureStats>>>>;

/// Starts capturing in the background: each worker sends `rounds` batches of
/// `batch` records (values `round * batch + i`), sleeping `pause` between
/// rounds so faults can be injected mid-capture. Returns the capture statuses
/// (one per worker, filled as workers start) and the running computation.
pub fn capture_slowly(
    log: Arc<dyn LogBackend>,
    topic: &str,
    workers: usize,
    rounds: u64,
    batch: u64,
    pause: std::time::Duration,
) -> (CaptureStatuses, timely::communication::initialize::WorkerGuards<()>) {
    log.create_topic(topic, workers as u32, false).unwrap();
    let topic = topic.to_string();
    let handles = Arc::new(std::sync::Mutex::new(Vec::new()));
    let registry = handles.clone();
    let failed = PeerFailure::default();
    let guards = timely::execute(config(workers), move |worker| {
        let _failure = failed.flag_on_panic();
        let (index, peers) = (worker.index() as u32, worker.peers() as u32);
        let producer = EventProducer::new(log.writer(&topic, index).unwrap(), index, peers).unwrap();
        registry.lock().unwrap().push(producer.status());
        let mut input = InputHandle::new();
        worker
            .dataflow::<u64, _, _>(|scope| scope.input_from(&mut input).container::<Vec<u64>>().capture_into(producer));
        for round in 0..rounds {
            for i in 0..batch {
                input.send(round * batch + i);
            }
            input.advance_to(round + 1);
            worker.step();
            std::thread::sleep(pause);
        }
        input.close();
        while worker.step() {
            failed.check();
        }
    })
    .unwrap();
    (handles, guards)
}

/// The fingerprint `capture_slowly` produces.
pub fn expected_slowly(workers: u64, rounds: u64, batch: u64) -> Fingerprint {
    let mut fp = Fingerprint::default();
    for _ in 0..workers {
        for value in 0..rounds * batch {
            fp.add(value);
        }
    }
    fp
}

/// Copies every record of `from` partition 0 to `to` partition 0 through a
/// plain writer, letting `edit` drop (empty result) or repeat records.
pub fn copy_records(log: &dyn LogBackend, from: &str, to: &str, mut edit: impl FnMut(u64, &[u8]) -> Vec<Vec<u8>>) {
    log.create_topic(to, 1, false).unwrap();
    let mut reader = log.reader(from, 0, 0).unwrap();
    let end = reader.end_offset().unwrap();
    let mut writer = log.writer(to, 0).unwrap();
    while let Some(record) = reader.poll(std::time::Duration::from_secs(10)).unwrap() {
        let offset = record.offset;
        for copy in edit(offset, record.payload) {
            writer.append(&copy).unwrap();
        }
        if offset + 1 >= end {
            break;
        }
    }
    writer.flush().unwrap();
}

/// Replays partition 0 of `topic` outside timely; returns the fingerprint
/// and the replay's error message, if it failed.
pub fn replay_partition(
    log: &dyn LogBackend,
    topic: &str,
) -> (Fingerprint, timely_kafka::status::ReplayStats, Option<String>) {
    use timely::dataflow::operators::capture::event::{Event, EventIterator};
    let opened = EventConsumer::<u64, Vec<u64>>::open(log, topic, 0, std::time::Duration::from_secs(10));
    let mut consumer = match opened {
        Ok(consumer) => consumer.idle_timeout(std::time::Duration::from_secs(3)),
        Err(error) => return (Fingerprint::default(), Default::default(), Some(error.to_string())),
    };
    let handle = consumer.status();
    let mut fp = Fingerprint::default();
    // A failed replay closes its frontier and stops; its handle has the error.
    while !handle.is_complete() && !handle.is_failed() {
        if let Some(event) = consumer.next() {
            if let Event::Messages(_, data) = event.into_owned() {
                data.into_iter().for_each(|x| fp.add(x));
            }
        }
    }
    (fp, handle.stats(), handle.error().map(|e| e.to_string()))
}

/// How long any one test may run before the whole test binary is stopped.
pub const TEST_BOUND: std::time::Duration = std::time::Duration::from_secs(300);

/// A watchdog for one test: unless dropped within [`TEST_BOUND`], it names the
/// test and exits the process, so a hang is a quick red line in CI rather
/// than a CI timeout. (Timely workers of a computation whose peer panicked
/// can spin forever; a test cannot kill them, only the process can end.)
pub struct Deadline {
    done: Arc<std::sync::atomic::AtomicBool>,
}

pub fn deadline() -> Deadline {
    let limit = TEST_BOUND;
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = Arc::new(AtomicBool::new(false));
    let watched = done.clone();
    let name = std::thread::current().name().unwrap_or("test").to_string();
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if watched.load(Ordering::Relaxed) {
                return;
            }
        }
        eprintln!("error: test '{name}' did not finish within {limit:?}; stopping the test binary");
        std::process::exit(101);
    });
    Deadline { done }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Timely workers whose peer panicked wait for it forever; this flag lets
/// the survivors notice and stop, so the test reports the first failure.
#[derive(Clone, Default)]
pub struct PeerFailure(Arc<std::sync::atomic::AtomicBool>);

pub struct PanicFlag(PeerFailure);

impl PeerFailure {
    pub fn flag_on_panic(&self) -> PanicFlag {
        PanicFlag(self.clone())
    }
    pub fn check(&self) {
        if self.0.load(std::sync::atomic::Ordering::Relaxed) {
            panic!("a peer worker failed");
        }
    }
}

impl Drop for PanicFlag {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0 .0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
