//! Plain Kafka records in and out of timely, against the mock cluster.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::records::{expected, parse, produce, read_all};
use common::Fingerprint;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Inspect, Probe, ToStream};
use timely::dataflow::ProbeHandle;
use timely_kafka::connect::sink::{KafkaSink, SinkConfig};
use timely_kafka::connect::source::{time, KafkaSource, SourceConfig, SourceEnd};
use timely_kafka::log::kafka::KafkaLog;

type Cluster = MockCluster<'static, DefaultProducerContext>;

fn cluster(topics: &[(&str, i32)]) -> (Cluster, String) {
    let cluster = MockCluster::new(1).unwrap();
    for (topic, partitions) in topics {
        cluster.create_topic(topic, *partitions, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    (cluster, brokers)
}

#[test]
fn four_partitions_two_workers_every_record_once() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster(&[("in", 4)]);
    produce(&brokers, "in", 4, 10_000, 1_000_000);
    assert_eq!(read_all(&brokers, "in", 2), expected(10_000));
    // More workers than partitions: the one without a partition must not hold the stream open.
    assert_eq!(read_all(&brokers, "in", 5), expected(10_000));
}

#[test]
fn event_time_frontier_never_passes_a_delivered_record() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster(&[("temps", 3)]);
    produce(&brokers, "temps", 3, 6_000, 1_000_000);
    let results = timely::execute(timely::Config::process(2), move |worker| {
        let config = SourceConfig::new(KafkaLog::new(&brokers, &[]).unwrap()).end(SourceEnd::CurrentEnd);
        let state = Arc::new(Mutex::new((std::collections::BTreeMap::<u64, u64>::new(), vec![0u64], 0u64)));
        let watch = state.clone();
        let bucket = time::event_time_bucket(100);
        let probe = worker.dataflow(|scope| {
            scope
                .kafka_source(config, "temps", None, move |r| parse(r).map(|v| (bucket(r), v)))
                .0
                .inspect_core(move |event| {
                    let (counts, frontier, late) = &mut *watch.lock().unwrap();
                    match event {
                        Ok((stamp, data)) => {
                            let t = *stamp.as_singleton().unwrap();
                            if !frontier.iter().any(|f| *f <= t) {
                                *late += 1;
                            }
                            *counts.entry(t).or_default() += data.len() as u64;
                        }
                        Err(f) => *frontier = f.to_vec(),
                    }
                })
                .probe()
                .0
        });
        while !probe.done() {
            worker.step();
        }
        let result = state.lock().unwrap().clone();
        result
    })
    .unwrap()
    .join();
    let mut counts = std::collections::BTreeMap::<u64, u64>::new();
    for result in results {
        let (worker_counts, frontier, late) = result.unwrap();
        assert_eq!(late, 0, "a record arrived behind the frontier");
        assert!(frontier.is_empty());
        for (t, n) in worker_counts {
            *counts.entry(t).or_default() += n;
        }
    }
    // 2000 records per partition, 10 ms apart: 10 per partition per 100 ms bucket.
    assert_eq!(counts.len(), 200);
    assert!(counts.iter().all(|(t, n)| *t % 100 == 0 && *n == 30), "{counts:?}");
}

#[test]
fn sink_then_source_round_trip() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster(&[("out", 4)]);
    let sink_brokers = brokers.clone();
    timely::execute(timely::Config::process(2), move |worker| {
        let config = SinkConfig::new(KafkaLog::new(&sink_brokers, &[]).unwrap());
        let (index, peers) = (worker.index() as u64, worker.peers() as u64);
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let values = (0..20_000u64).filter(move |v| v % peers == index).to_stream(scope).container::<Vec<_>>();
            let handle = values.clone().map(|v| (v.to_string(), v.to_string())).kafka_sink(config, "out");
            let _ = handle;
            values.probe().0
        });
        while !probe.done() {
            worker.step();
        }
    })
    .unwrap()
    .join()
    .into_iter()
    .for_each(|r| r.unwrap());
    assert_eq!(read_all(&brokers, "out", 3), expected(20_000));
}

/// Runs one group member until `stop` is set; returns what it emitted.
fn group_member(
    brokers: String,
    topic: &'static str,
    group: &'static str,
    end: SourceEnd,
    stop_after: Arc<dyn Fn(u64) -> bool + Send + Sync>,
    assigned: Arc<Mutex<Vec<u32>>>,
) -> Fingerprint {
    let results = timely::execute(timely::Config::thread(), move |worker| {
        // Short group timeouts: librdkafka's defaults (45 s session) make the
        // mock coordinator's rebalances take most of a minute.
        let properties =
            [("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "500")].map(|(k, v)| (k.into(), v.into()));
        let log = KafkaLog::new(&brokers, &properties).unwrap();
        let mut config = SourceConfig::new(log).group(group).end(end.clone());
        config.idle_timeout = Duration::from_millis(200);
        config.assigned = assigned.clone();
        let stop = config.stop.clone();
        let seen = Arc::new(Mutex::new(Fingerprint::default()));
        let sink = seen.clone();
        let probe = ProbeHandle::new();
        worker.dataflow(|scope| {
            scope
                .kafka_source(config, topic, Some(probe.clone()), |r| parse(r).map(|v| (time::offset(r), v)))
                .0
                .inspect(move |x| sink.lock().unwrap().add(*x))
                .probe_with(&probe);
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !probe.done() {
            worker.step_or_park(Some(Duration::from_millis(5)));
            if stop_after(seen.lock().unwrap().count) {
                stop.store(true, Ordering::Relaxed);
            }
            assert!(std::time::Instant::now() < deadline, "group member did not finish");
        }
        while worker.step() {}
        let fp = *seen.lock().unwrap();
        fp
    })
    .unwrap()
    .join();
    results.into_iter().map(|r| r.unwrap()).fold(Fingerprint::default(), Fingerprint::merge)
}

#[test]
fn consumer_group_of_three_shares_three_partitions() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster(&[("shared", 3)]);
    let total = Arc::new(AtomicU64::new(0));
    let assignments: Vec<Arc<Mutex<Vec<u32>>>> = (0..3).map(|_| Default::default()).collect();
    let members: Vec<_> = (0..3)
        .map(|member| {
            let (brokers, total, assigned) = (brokers.clone(), total.clone(), assignments[member].clone());
            std::thread::spawn(move || {
                let mine = Arc::new(AtomicU64::new(0));
                let counter = mine.clone();
                let stop = Arc::new(move |count: u64| {
                    let before = counter.swap(count, Ordering::Relaxed);
                    total.fetch_add(count - before, Ordering::Relaxed);
                    total.load(Ordering::Relaxed) >= 3_000
                });
                group_member(brokers, "shared", "g3", SourceEnd::Live, stop, assigned)
            })
        })
        .collect();
    // Let the group settle on one partition per member, then produce.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !assignments.iter().all(|a| a.lock().unwrap().len() == 1) {
        assert!(std::time::Instant::now() < deadline, "the group did not settle");
        std::thread::sleep(Duration::from_millis(50));
    }
    produce(&brokers, "shared", 3, 3_000, 0);
    let shares: Vec<Fingerprint> = members.into_iter().map(|m| m.join().unwrap()).collect();
    assert!(shares.iter().all(|s| s.count > 0), "every member gets a share: {shares:?}");
    let whole = shares.iter().copied().fold(Fingerprint::default(), Fingerprint::merge);
    assert_eq!(whole, expected(3_000), "the shares sum to the whole, without duplicates");
}

#[test]
fn restarted_group_job_neither_loses_nor_repeats_output() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster(&[("jobs", 2)]);
    produce(&brokers, "jobs", 2, 10_000, 0);
    let first = group_member(
        brokers.clone(),
        "jobs",
        "restart",
        SourceEnd::Live,
        Arc::new(|count| count >= 4_000),
        Default::default(),
    );
    assert!(first.count >= 4_000 && first.count < 10_000, "first run stopped mid-way: {}", first.count);
    let second =
        group_member(brokers, "jobs", "restart", SourceEnd::CurrentEnd, Arc::new(|_| false), Default::default());
    assert_eq!(first.merge(second), expected(10_000), "first {} + second {}", first.count, second.count);
}
