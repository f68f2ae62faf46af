//! The Kafka connectors fail the way capture and replay do: with 3 workers
//! against the mock cluster, a broker that goes down past the timeout, a
//! missing topic and an unreachable broker each end the program with the
//! error returned by `execute` — no panic, no hang (each test is
//! bounded by its watchdog).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::records::{parse, produce};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Probe, ToStream};
use timely_kafka::connect::sink::{KafkaSink, SinkConfig};
use timely_kafka::connect::source::SourceStats;
use timely_kafka::connect::source::{time, KafkaSource, SourceConfig, SourceEnd};
use timely_kafka::execute;
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::status::Status;
use timely_kafka::Error;

type Cluster = MockCluster<'static, DefaultProducerContext>;

const WORKERS: usize = 3;
const TIMEOUT: Duration = Duration::from_secs(2);

fn cluster(topics: &[(&str, i32)]) -> (Cluster, String) {
    let cluster = MockCluster::new(1).unwrap();
    for (topic, partitions) in topics {
        cluster.create_topic(topic, *partitions, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    (cluster, brokers)
}

/// Short client timeouts, so a dead broker fails a record in bounded time.
fn log(brokers: &str) -> KafkaLog {
    let properties = [("message.timeout.ms", "2000"), ("socket.timeout.ms", "2000")];
    KafkaLog::unchecked(brokers, &properties.map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
}

/// Every worker's source status.
#[derive(Clone, Default)]
struct SourceStatuses(Arc<Mutex<Vec<Status<SourceStats>>>>);

impl SourceStatuses {
    fn is_failed(&self) -> bool {
        self.0.lock().unwrap().iter().any(|s| s.is_failed())
    }
    fn warnings(&self) -> u64 {
        self.0.lock().unwrap().iter().map(|s| s.warnings()).sum()
    }
}

/// Runs a live source of `topic` (every worker) into a probe until it ends;
/// `before_run` is called by worker 0 once the dataflow is built.
fn run_source(
    brokers: String,
    topic: &'static str,
    before_run: impl Fn() + Send + Sync + 'static,
) -> (Result<Vec<u64>, Error>, SourceStatuses) {
    let statuses = SourceStatuses::default();
    let shared = statuses.clone();
    let result = execute(timely::Config::process(WORKERS), move |w| {
        let config = SourceConfig::new(log(&brokers)).end(SourceEnd::Live).broker_timeout(TIMEOUT);
        let seen = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let count = seen.clone();
        let probe = w.dataflow::<u64, _, _>(|scope| {
            let (values, status) =
                scope.kafka_source(config, topic, None, move |r| parse(r).map(|v| (time::offset(r), v)));
            shared.0.lock().unwrap().push(status);
            values
                .map(move |v| {
                    count.set(count.get() + 1);
                    v
                })
                .probe()
                .0
        });
        if w.index() == 0 {
            before_run();
        }
        while !probe.done() {
            w.step_or_park(Some(Duration::from_millis(5)));
        }
        Ok(seen.get())
    });
    (result, statuses)
}

/// Sinks `count` records per worker (different on each) to `topic`;
/// `before_run` is called by worker 0 once the dataflow is built.
fn run_sink(
    brokers: String,
    topic: &'static str,
    count: u64,
    before_run: impl Fn() + Send + Sync + 'static,
) -> Result<Vec<bool>, Error> {
    execute(timely::Config::process(WORKERS), move |w| {
        let config = SinkConfig::new(log(&brokers)).flush_timeout(TIMEOUT);
        let (index, peers) = (w.index() as u64, w.peers() as u64);
        let (probe, sink) = w.dataflow::<u64, _, _>(|scope| {
            let values = (0..count).map(move |i| i * peers + index).to_stream(scope).container::<Vec<_>>();
            let sink = values.clone().map(|v| (v.to_string(), v.to_string())).kafka_sink(config, topic);
            (values.probe().0, sink)
        });
        if w.index() == 0 {
            before_run();
        }
        while !probe.done() {
            w.step_or_park(Some(Duration::from_millis(5)));
        }
        while w.step_or_park(Some(Duration::from_millis(5))) {}
        // A failed sink never reports completion.
        Ok(sink.is_complete())
    })
}

fn assert_error_names(result: Result<impl std::fmt::Debug, Error>, words: &[&str]) -> String {
    let message = result.expect_err("the program must end with the connector's error").to_string();
    for word in words {
        assert!(message.contains(word), "error '{message}' does not mention '{word}'");
    }
    assert!(!message.contains('\n'), "error is not one line: {message}");
    message
}

#[test]
fn sink_with_broker_down_past_the_timeout_ends_with_the_error() {
    let _deadline = common::deadline();
    let (cluster, brokers) = cluster(&[("out", 3)]);
    let (signal, built) = std::sync::mpsc::channel();
    let running = std::thread::spawn(move || run_sink(brokers, "out", 20_000, move || signal.send(()).unwrap()));
    built.recv().unwrap();
    cluster.broker_down(1).unwrap();
    let result = running.join().unwrap();
    let message = assert_error_names(result, &["kafka sink", "out"]);
    eprintln!("sink, broker down: {message}");
}

#[test]
fn sink_to_a_missing_topic_ends_with_the_error() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster(&[("out", 3)]);
    let result = run_sink(brokers, "nowhere", 1_000, || {});
    let message = assert_error_names(result, &["nowhere", "does not exist"]);
    eprintln!("sink, missing topic: {message}");
}

#[test]
fn sink_to_an_unreachable_broker_ends_with_the_error() {
    let _deadline = common::deadline();
    // Nothing listens on port 1.
    let result = run_sink("127.0.0.1:1".into(), "out", 1_000, || {});
    let message = assert_error_names(result, &["kafka sink", "out", "no metadata"]);
    eprintln!("sink, unreachable broker: {message}");
}

#[test]
fn sink_that_completes_says_so() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster(&[("out", 3)]);
    let complete = run_sink(brokers, "out", 1_000, || {}).unwrap();
    assert_eq!(complete, vec![true; WORKERS]);
}

#[test]
fn source_with_broker_down_past_the_timeout_ends_with_the_error() {
    let _deadline = common::deadline();
    let (cluster, brokers) = cluster(&[("in", 3)]);
    produce(&brokers, "in", 3, 3_000, 1_000_000);
    let (signal, built) = std::sync::mpsc::channel();
    let running = std::thread::spawn(move || run_source(brokers, "in", move || signal.send(()).unwrap()));
    built.recv().unwrap();
    // Let the workers read for a moment first.
    std::thread::sleep(Duration::from_millis(300));
    cluster.broker_down(1).unwrap();
    let (result, status) = running.join().unwrap();
    let message = assert_error_names(result, &["kafka source", "'in'", "unreachable"]);
    assert!(status.is_failed());
    assert!(status.warnings() > 0, "the transient errors before the failure were not counted");
    eprintln!("source, broker down: {message} ({} warnings)", status.warnings());
}

#[test]
fn source_of_a_missing_topic_ends_with_the_error() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster(&[("in", 3)]);
    let (result, status) = run_source(brokers, "nowhere", || {});
    let message = assert_error_names(result, &["nowhere", "does not exist"]);
    assert!(status.is_failed());
    eprintln!("source, missing topic: {message}");
}

#[test]
fn source_of_an_unreachable_broker_ends_with_the_error() {
    let _deadline = common::deadline();
    let (result, _status) = run_source("127.0.0.1:1".into(), "in", || {});
    let message = assert_error_names(result, &["kafka source", "'in'", "no metadata"]);
    eprintln!("source, unreachable broker: {message}");
}

#[test]
fn a_failed_source_ends_a_computation_whose_other_sink_commits_nothing() {
    // Source of a missing topic, and in the same computation a sink fed by
    // it: the closed frontier is no completion.
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster(&[("out", 3)]);
    let result = execute(timely::Config::process(WORKERS), move |w| {
        let config = SourceConfig::new(log(&brokers)).broker_timeout(TIMEOUT);
        let sink_config = SinkConfig::new(log(&brokers)).flush_timeout(TIMEOUT);
        let (probe, sink) = w.dataflow::<u64, _, _>(|scope| {
            let (values, _) = scope.kafka_source(config, "nowhere", None, |r| parse(r).map(|v| (0, v)));
            let sink = values.clone().map(|v| (v.to_string(), v.to_string())).kafka_sink(sink_config, "out");
            (values.probe().0, sink)
        });
        while !probe.done() {
            w.step_or_park(Some(Duration::from_millis(5)));
        }
        while w.step_or_park(Some(Duration::from_millis(5))) {}
        Ok(sink.is_complete())
    });
    assert_error_names(result, &["nowhere"]);
}
