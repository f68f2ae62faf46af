//! Capture and replay through the embedded file log with different worker counts.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{capture, replay, Fingerprint};
use timely::dataflow::operators::capture::Replay;
use timely::dataflow::operators::{Capture, Input, Inspect, Probe};
use timely::dataflow::InputHandle;
use timely_kafka::log::file::FileLog;
use timely_kafka::log::LogBackend;
use timely_kafka::{CodecId, EventConsumer, EventProducer};

fn round_trip(send: usize, recv: usize, count: u64) {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn LogBackend> = Arc::new(FileLog::new(dir.path()));
    capture(log.clone(), "t", send, count);
    assert_eq!(replay(log, "t", recv), Fingerprint::expected(send as u64, count));
}

#[test]
fn one_to_one() {
    round_trip(1, 1, 100_000);
}

#[test]
fn five_to_three() {
    round_trip(5, 3, 50_000);
}

#[test]
fn three_to_five() {
    round_trip(3, 5, 50_000);
}

#[test]
fn four_to_one() {
    round_trip(4, 1, 50_000);
}

#[test]
fn small_segments_roll_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn LogBackend> = Arc::new(FileLog::new(dir.path()).segment_bytes(4096));
    capture(log.clone(), "t", 2, 20_000);
    let segments = std::fs::read_dir(dir.path().join("t/0")).unwrap().count();
    assert!(segments > 10, "expected many segments, found {segments}");
    assert_eq!(replay(log, "t", 3), Fingerprint::expected(2, 20_000));
}

const TIMES: u64 = 100;
const WORKERS: usize = 3;

/// Records at times 0..100 from three workers: worker w sends `t * 10 + w`
/// `(t % 7) + 1` times at time t.
fn per_time_counts() -> BTreeMap<u64, u64> {
    (0..TIMES).map(|t| (t, WORKERS as u64 * ((t % 7) + 1))).collect()
}

#[test]
fn many_timestamps_replay_with_the_same_times_and_frontiers() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::new(dir.path());
    log.create_topic("times", WORKERS as u32, CodecId::Bincode, false).unwrap();

    let capture_log = log.clone();
    timely::execute(timely::Config::process(WORKERS), move |worker| {
        let (index, peers) = (worker.index() as u32, worker.peers() as u32);
        let producer = EventProducer::new(capture_log.writer("times", index).unwrap(), index, peers).unwrap();
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
        while worker.step() {}
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
                .map(|p| EventConsumer::new(log.reader("times", p, 0).unwrap()))
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
