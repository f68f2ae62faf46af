//! Shared helpers for the integration tests: capture `0..count` per worker,
//! replay with any number of workers, and fingerprints of what was seen.
#![allow(dead_code)]

use std::sync::Arc;

use timely::dataflow::operators::capture::Replay;
use timely::dataflow::operators::{Capture, Inspect, Probe, ToStream};
use timely_kafka::log::LogBackend;
use timely_kafka::{CodecId, EventConsumer, EventProducer};

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
    log.create_topic(topic, workers as u32, CodecId::Bincode, false).unwrap();
    let topic = topic.to_string();
    let guards = timely::execute(config(workers), move |worker| {
        let (index, peers) = (worker.index() as u32, worker.peers() as u32);
        let producer = EventProducer::new(log.writer(&topic, index).unwrap(), index, peers).unwrap();
        let handle = producer.handle();
        worker
            .dataflow::<u64, _, _>(|scope| (0..count).to_stream(scope).container::<Vec<u64>>().capture_into(producer));
        while worker.step() {}
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
    let guards = timely::execute(config(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let consumers: Vec<EventConsumer<u64, Vec<u64>>> =
            timely_kafka::StreamLayout::assigned(partitions, index, peers)
                .map(|p| {
                    EventConsumer::new(log.reader(&topic, p, 0).unwrap())
                        .idle_timeout(std::time::Duration::from_secs(20))
                })
                .collect();
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Fingerprint::default()));
        let sink = seen.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            consumers.replay_into(scope).inspect(move |x| sink.borrow_mut().add(*x)).probe().0
        });
        while !probe.done() {
            worker.step();
        }
        let fp = *seen.borrow();
        fp
    })
    .unwrap();
    guards.join().into_iter().map(|r| r.unwrap()).fold(Fingerprint::default(), Fingerprint::merge)
}
