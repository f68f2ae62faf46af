//! Differential collections through the log: a collection computed from
//! inserts and retractions over many times, captured by three workers and
//! replayed by one, two and three, then joined and reduced, equals the same
//! join and reduce computed directly. File log and mock cluster.
#![cfg(feature = "differential")]

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use differential_dataflow::input::Input;
use differential_dataflow::VecCollection;
use rdkafka::mocking::MockCluster;
use timely::dataflow::operators::{Inspect, Probe};
use timely_kafka::differential::{CaptureCollection, ReplayCollection};
use timely_kafka::log::file::FileLog;
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;
use timely_kafka::{execute, CaptureOptions, ReplayOptions};

const ROUNDS: u64 = 200;
const KEYS: u64 = 10;
const CAPTURE_WORKERS: usize = 3;

type Pair = (u64, u64);
/// Consolidated updates of the result: (record, time) -> difference.
type History = BTreeMap<((u64, u64, isize), u64), isize>;

fn config(workers: usize) -> timely::Config {
    if workers == 1 {
        timely::Config::thread()
    } else {
        timely::Config::process(workers)
    }
}

/// Worker `w`'s changes at `round`: one insert, and the retraction of its
/// insert three rounds earlier.
fn changes(w: u64, round: u64) -> Vec<(Pair, isize)> {
    let record = |r: u64| ((r * 7 + w * 3) % KEYS, r * 100 + w);
    let mut changes = vec![(record(round), 1)];
    if round >= 3 {
        changes.push((record(round - 3), -1));
    }
    changes
}

/// Builds the computed collection from this worker's input, feeds every
/// round, and lets `finish` attach to the collection (capture or result).
fn compute<F>(w: &mut timely::worker::Worker, finish: F) -> timely::dataflow::ProbeHandle<u64>
where
    F: FnOnce(VecCollection<'_, u64, Pair>) -> timely::dataflow::ProbeHandle<u64>,
{
    let index = w.index() as u64;
    let (mut input, probe) = w.dataflow::<u64, _, _>(|scope| {
        let (input, pairs) = scope.new_collection::<Pair, isize>();
        (input, finish(pairs.map(|(k, v)| (k, v % 1000)).filter(|(_, v)| v % 11 != 0)))
    });
    for round in 0..ROUNDS {
        for (pair, diff) in changes(index, round) {
            input.update(pair, diff);
        }
        input.advance_to(round + 1);
        input.flush();
        w.step();
    }
    drop(input);
    probe
}

/// The join of the collection with its per-key counts (a reduce), as a
/// consolidated history of (key, value, count) updates.
fn result(pairs: VecCollection<'_, u64, Pair>, sink: Rc<RefCell<History>>) -> timely::dataflow::ProbeHandle<u64> {
    let counts = pairs.clone().map(|(k, _)| k).count();
    let joined = pairs.join(counts).map(|(k, (v, c))| (k, v, c));
    joined
        .inner
        .inspect(move |(record, time, diff)| {
            let mut history = sink.borrow_mut();
            let entry = history.entry((*record, *time)).or_default();
            *entry += diff;
            if *entry == 0 {
                history.remove(&(*record, *time));
            }
        })
        .probe()
        .0
}

fn merge(histories: Vec<History>) -> History {
    let mut merged = History::new();
    for (key, diff) in histories.into_iter().flatten() {
        *merged.entry(key).or_default() += diff;
    }
    merged.retain(|_, diff| *diff != 0);
    merged
}

fn direct() -> History {
    let histories = execute(config(CAPTURE_WORKERS), |w| {
        let history = Rc::new(RefCell::new(History::new()));
        let sink = history.clone();
        let probe = compute(w, move |pairs| result(pairs, sink));
        w.step_while(|| !probe.done());
        Ok(history.take())
    })
    .unwrap();
    merge(histories)
}

fn capture(log: Arc<dyn LogBackend>, create_topic: bool) {
    execute(config(CAPTURE_WORKERS), move |w| {
        let options = CaptureOptions { create_topic, ..Default::default() };
        let producer = timely_kafka::capture(w, log.as_ref(), "pairs", options.clone())?;
        let handle = producer.status();
        let probe = compute(w, move |pairs| {
            let probe = pairs.clone().inner.probe().0;
            pairs.capture_updates(producer);
            probe
        });
        w.step_while(|| !probe.done());
        while w.step() {}
        handle.outcome().map(|_| ())
    })
    .unwrap();
}

fn replay(log: Arc<dyn LogBackend>, workers: usize) -> History {
    let histories = execute(config(workers), move |w| {
        let streams = timely_kafka::replay(w, log.as_ref(), "pairs", ReplayOptions::default())?;
        let history = Rc::new(RefCell::new(History::new()));
        let sink = history.clone();
        let probe = w.dataflow::<u64, _, _>(|scope| result(streams.replay_collection(scope), sink));
        w.step_while(|| !probe.done());
        Ok(history.take())
    })
    .unwrap();
    merge(histories)
}

fn round_trip(log: Arc<dyn LogBackend>, create_topic: bool) {
    let expected = direct();
    assert!(expected.len() > 500, "a history over many times: {} updates", expected.len());
    assert!(expected.values().any(|d| *d < 0), "the history has retractions");
    capture(log.clone(), create_topic);
    for workers in 1..=3 {
        assert_eq!(replay(log.clone(), workers), expected, "replayed with {workers} workers");
    }
}

#[test]
fn file_log_replays_equal_the_direct_result() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    round_trip(Arc::new(FileLog::new(dir.path())), true);
}

#[test]
fn mock_cluster_replays_equal_the_direct_result() {
    let _deadline = common::deadline();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("pairs", CAPTURE_WORKERS as i32, 1).unwrap();
    let log = KafkaLog::new(&cluster.bootstrap_servers(), &[]).unwrap();
    round_trip(Arc::new(log), false);
}
