//! The exactly-once pipeline against librdkafka's mock cluster, which
//! answers the transactional calls but shows aborted records to
//! read_committed readers: exactly-once refuses it in one line, and with
//! the tests-only override the commit protocol runs on it, so injected
//! transactional errors can be checked (an outcome is exact only while no
//! transaction is aborted, which is what the retriable cases assert).

mod common;

use std::time::Duration;

use common::records::{expected, parse, produce, read_all};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Probe;
use timely_kafka::connect::source::{time, KafkaSource, SourceConfig, SourceEnd};
use timely_kafka::connect::transactional::{self, PipelineConfig};
use timely_kafka::execute;
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::{Error, Result};

type Cluster = MockCluster<'static, DefaultProducerContext>;

const WORKERS: usize = 3;
const COUNT: u64 = 3_000;

fn cluster() -> (Cluster, String) {
    let cluster = MockCluster::new(1).unwrap();
    for (topic, partitions) in [("in", 3), ("out", 2), ("out.progress", 1)] {
        cluster.create_topic(topic, partitions, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, "in", 3, COUNT, 1_000_000);
    (cluster, brokers)
}

/// Copies `in` to `out` exactly once (times: offset / 100), with 3 workers;
/// `fail_elsewhere` adds a source of a missing topic to the computation.
/// Returns the commits and records written, summed over the workers.
fn copy(brokers: &str, accept_mock: bool, fail_elsewhere: bool) -> Result<(u64, u64)> {
    let brokers = brokers.to_string();
    let per_worker = execute(timely::Config::process(WORKERS), move |w| {
        let log = KafkaLog::new(&brokers, &[])?;
        let mut config = PipelineConfig::new(log.clone(), "in", "out").commit_interval(Duration::from_millis(10));
        config.accept_broker_without_aborts = accept_mock;
        config.timeout = Duration::from_secs(10);
        // ~23 KB of output in 10 times of at most ~2.4 KB: a transaction
        // holds at most ~4.4 KB, so at least 6, however fast the input is read.
        config.max_transaction_bytes = 2_000;
        let pipeline = transactional::open(w, &config)?;
        let source = SourceConfig::new(log.clone()).end(SourceEnd::CurrentEnd).broker_timeout(Duration::from_secs(5));
        let handle = w.dataflow::<u64, _, _>(|scope| {
            let resume = pipeline.source_resume();
            let (values, binding, _) = scope
                .kafka_source_exactly_once(source.clone(), "in", resume, |r| parse(r).map(|v| (r.offset / 100, v)));
            if fail_elsewhere {
                scope.kafka_source(source, "missing", None, |r| parse(r).map(|v| (time::offset(r), v))).0.probe();
            }
            pipeline.sink(values.map(|v| (v.to_string(), v.to_string())), binding)
        });
        while w.step_or_park(Some(Duration::from_millis(5))) {}
        Ok((handle.stats().commits, handle.stats().written))
    })?;
    Ok(per_worker.into_iter().fold((0, 0), |(c, r), (commits, written)| (c + commits, r + written)))
}

fn high_watermark(brokers: &str, topic: &str, partition: i32) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)).unwrap().1
}

fn unreachable() -> KafkaLog {
    KafkaLog::unchecked("127.0.0.1:1", &[]).unwrap()
}

fn one_line(error: Error) -> String {
    let message = error.to_string();
    assert!(!message.contains('\n'), "not one line: {message}");
    message
}

#[test]
fn exactly_once_refuses_the_mock_cluster_in_one_line() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster();
    let message = one_line(copy(&brokers, false, false).unwrap_err());
    assert!(message.contains("refused") && message.contains("aborted"), "{message}");
    assert_eq!(high_watermark(&brokers, "out", 0) + high_watermark(&brokers, "out", 1), 0);
}

#[test]
fn a_copy_is_exact_and_a_second_run_writes_nothing_again() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster();
    let (commits, written) = copy(&brokers, true, false).unwrap();
    assert_eq!(written, COUNT);
    assert!(commits >= 6, "{commits} commits of at most ~4.4 KB for ~23 KB of output");
    assert_eq!(read_all(&brokers, "out", 2), expected(COUNT));
    // Everything is committed: a restart re-reads the input, drops it all.
    assert_eq!(copy(&brokers, true, false).unwrap(), (0, 0));
    assert_eq!(read_all(&brokers, "out", 2), expected(COUNT));
}

#[test]
fn a_failed_input_never_commits() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster();
    let message = one_line(copy(&brokers, true, true).unwrap_err());
    assert!(message.contains("missing"), "{message}");
    // Nothing was written, and the next start finds no commit.
    assert_eq!(high_watermark(&brokers, "out", 0) + high_watermark(&brokers, "out", 1), 0);
    assert_eq!(copy(&brokers, true, false).unwrap().1, COUNT);
    assert_eq!(read_all(&brokers, "out", 2), expected(COUNT));
}

#[test]
fn retriable_transactional_errors_end_exact() {
    use RDKafkaRespErr::*;
    let _deadline = common::deadline();
    let (cluster, brokers) = cluster();
    cluster.request_errors(RDKafkaApiKey::InitProducerId, &[RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS]);
    cluster.request_errors(
        RDKafkaApiKey::AddPartitionsToTxn,
        &[RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS],
    );
    cluster.request_errors(RDKafkaApiKey::Produce, &[RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS]);
    cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS],
    );
    let (_, written) = copy(&brokers, true, false).unwrap();
    assert_eq!(written, COUNT);
    assert_eq!(read_all(&brokers, "out", 2), expected(COUNT));
}

#[test]
fn fatal_transactional_errors_end_with_a_clear_error_and_a_restart_succeeds() {
    use RDKafkaRespErr::*;
    let _deadline = common::deadline();
    let (cluster, brokers) = cluster();
    // Fencing refused at start.
    cluster.request_errors(RDKafkaApiKey::InitProducerId, &[RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED]);
    let message = one_line(copy(&brokers, true, false).unwrap_err());
    assert!(message.contains("init_transactions"), "{message}");
    // Fenced at the first commit: a newer instance took over.
    cluster.request_errors(RDKafkaApiKey::EndTxn, &[RD_KAFKA_RESP_ERR_PRODUCER_FENCED]);
    let message = one_line(copy(&brokers, true, false).unwrap_err());
    assert!(message.contains("fenced") || message.contains("Fenced"), "{message}");
    // The next start continues; the mock shows the fenced transaction's
    // records and progress too, so the copy is still exact for its readers.
    copy(&brokers, true, false).unwrap();
    assert_eq!(read_all(&brokers, "out", 2), expected(COUNT));
}

#[test]
fn a_source_failure_the_sink_cannot_see_still_commits_nothing() {
    // Plain timely::execute: no computation to learn of the failure from,
    // as for a source failing in another process. Worker 0's source reads
    // its partition (every record at time 0) and ends; the others fail at
    // once, without their clean-end report, so the sink's closed frontier
    // commits nothing, though it holds records.
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster();
    let source_statuses = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let statuses = source_statuses.clone();
    let pipeline_brokers = brokers.clone();
    let results = timely::execute(timely::Config::process(WORKERS), move |w| {
        let log = KafkaLog::new(&pipeline_brokers, &[]).unwrap();
        let mut config = PipelineConfig::new(log, "in", "out");
        config.accept_broker_without_aborts = true;
        let pipeline = transactional::open(w, &config).unwrap();
        // The other workers' sources cannot reach any broker.
        let source_log = if w.index() == 0 { KafkaLog::new(&pipeline_brokers, &[]).unwrap() } else { unreachable() };
        let source = SourceConfig::new(source_log).end(SourceEnd::CurrentEnd).broker_timeout(Duration::from_secs(2));
        let records = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let counter = records.clone();
        let handle = w.dataflow::<u64, _, _>(|scope| {
            let resume = pipeline.source_resume();
            let (values, binding, status) =
                scope.kafka_source_exactly_once(source, "in", resume, |r| parse(r).map(|v| (0, v)));
            statuses.lock().unwrap().push(status);
            let values = values.map(move |v| {
                counter.set(counter.get() + 1);
                v
            });
            pipeline.sink(values.map(|v| (v.to_string(), v.to_string())), binding)
        });
        while w.step_or_park(Some(Duration::from_millis(5))) {}
        (handle.stats().commits, handle.is_complete(), handle.stats().dropped + records.get())
    })
    .unwrap()
    .join();
    let failed: Vec<_> = source_statuses.lock().unwrap().iter().filter_map(|s| s.error()).collect();
    assert_eq!(failed.len(), WORKERS - 1, "every source but worker 0's failed: {failed:?}");
    assert!(failed.iter().all(|e| e.to_string().contains("no metadata")), "{failed:?}");
    let mut read = 0;
    for result in results {
        let (commits, complete, records) = result.unwrap();
        assert_eq!((commits, complete), (0, false), "a failure-closed frontier was committed or called complete");
        read += records;
    }
    assert_eq!(read, COUNT / 3, "worker 0 read its partition");
    assert_eq!(high_watermark(&brokers, "out", 0) + high_watermark(&brokers, "out", 1), 0);
}

/// The same, with times `offset / 100` and worker 0's source live: once
/// the others failed, its frontier alone would advance and commit times
/// the failed workers' partitions never reached (a source failing in
/// another process, which worker 0 learns of only when the computation
/// ends). Their failure reports reach the sink first: nothing is committed
/// and the sink fails in one line naming the failed worker.
#[test]
fn a_source_failure_in_another_process_stops_the_commits_of_a_live_input() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster();
    let pipeline_brokers = brokers.clone();
    let results = timely::execute(timely::Config::process(WORKERS), move |w| {
        let log = KafkaLog::new(&pipeline_brokers, &[]).unwrap();
        let mut config = PipelineConfig::new(log, "in", "out").commit_interval(Duration::from_millis(1));
        config.accept_broker_without_aborts = true;
        let pipeline = transactional::open(w, &config).unwrap();
        let source_log = if w.index() == 0 { KafkaLog::new(&pipeline_brokers, &[]).unwrap() } else { unreachable() };
        let source = SourceConfig::new(source_log).end(SourceEnd::Live).broker_timeout(Duration::from_secs(2));
        // Each worker's source fails alone (its status is its own), as if
        // in a process of its own.
        let stop = source.stop.clone();
        let read = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let counter = read.clone();
        let handle = w.dataflow::<u64, _, _>(|scope| {
            let resume = pipeline.source_resume();
            let (values, binding, _) = scope.kafka_source_exactly_once(source, "in", resume, move |r| {
                counter.set(counter.get() + 1);
                parse(r).map(|v| (r.offset / 100, v))
            });
            pipeline.sink(values.map(|v| (v.to_string(), v.to_string())), binding)
        });
        let started = std::time::Instant::now();
        while w.step_or_park(Some(Duration::from_millis(5))) {
            // The live source runs on until the sink has failed (or 60 s).
            let done = w.index() != 0 || handle.is_failed() || started.elapsed() > Duration::from_secs(60);
            stop.store(done, std::sync::atomic::Ordering::Relaxed);
        }
        (handle.stats().commits, handle.error().map(|e| e.to_string()), read.get())
    })
    .unwrap()
    .join();
    let (commits, error, read) = results.into_iter().next().unwrap().unwrap();
    assert_eq!(read, COUNT / 3, "worker 0 read its partition");
    assert_eq!(commits, 0, "commits after the other sources failed");
    let error = error.expect("the sink failed");
    assert!(error.contains("the source on worker") && error.contains("failed") && !error.contains('\n'), "{error}");
    assert_eq!(high_watermark(&brokers, "out", 0) + high_watermark(&brokers, "out", 1), 0);
}

/// A binding stream without the sources' clean ends (not an exactly-once
/// source's, or one whose process died): the closed frontier is no end of
/// input. Nothing is committed, and the sink fails in one line saying so
/// (it used to return quietly: `execute` succeeded with the last outputs
/// uncommitted).
#[test]
fn a_closed_frontier_without_clean_ends_fails_in_one_line() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster();
    let results = execute(timely::Config::process(2), move |w| {
        let log = KafkaLog::new(&brokers, &[])?;
        let mut config = PipelineConfig::new(log, "in", "out");
        config.accept_broker_without_aborts = true;
        let pipeline = transactional::open(w, &config)?;
        let index = w.index() as u64;
        let handle = w.dataflow::<u64, _, _>(|scope| {
            use timely::dataflow::operators::ToStream;
            let values = (0..10u64).map(move |v| v * 2 + index).to_stream(scope);
            let binding = Vec::<(u32, u64)>::new().to_stream(scope);
            pipeline.sink(values.map(|v| (v.to_string(), v.to_string())), binding)
        });
        while w.step_or_park(Some(Duration::from_millis(5))) {}
        Ok(handle.stats().commits)
    });
    let error = results.expect_err("a closed frontier without clean ends").to_string();
    assert!(error.contains("clean end from 0 of 2 sources") && !error.contains('\n'), "{error}");
}

/// The exactly-once source sets `isolation.level` and `auto.offset.reset`
/// itself: given in its client properties, it refuses to start, naming
/// the property, and the pipeline commits nothing.
#[test]
fn an_exactly_once_source_refuses_the_properties_it_sets_itself() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster();
    for (key, value) in [("isolation.level", "read_uncommitted"), ("auto.offset.reset", "earliest")] {
        let brokers = brokers.clone();
        let result = execute(timely::Config::process(2), move |w| {
            let log = KafkaLog::new(&brokers, &[])?;
            let mut config = PipelineConfig::new(log, "in", "out");
            config.accept_broker_without_aborts = true;
            let pipeline = transactional::open(w, &config)?;
            let given = [(key.to_string(), value.to_string())];
            let source = SourceConfig::new(KafkaLog::new(&brokers, &given)?).end(SourceEnd::CurrentEnd);
            let handle = w.dataflow::<u64, _, _>(|scope| {
                let resume = pipeline.source_resume();
                let (values, binding, _) =
                    scope.kafka_source_exactly_once(source, "in", resume, |r| parse(r).map(|v| (0, v)));
                pipeline.sink(values.map(|v| (v.to_string(), v.to_string())), binding)
            });
            while w.step_or_park(Some(Duration::from_millis(5))) {}
            Ok(handle.stats().commits)
        });
        let line = result.expect_err("refused").to_string();
        assert!(line.contains(&format!("client property '{key}' is set by the source")), "{line}");
    }
    assert_eq!(high_watermark(&brokers, "out", 0) + high_watermark(&brokers, "out", 1), 0);
}

/// An exactly-once source on another topic than the pipeline's input: its
/// offsets would be stored as the input's. Refused in one line naming both.
#[test]
fn an_exactly_once_source_of_another_topic_is_refused() {
    let _deadline = common::deadline();
    let (_cluster, brokers) = cluster();
    let result = execute(timely::Config::process(2), move |w| {
        let log = KafkaLog::new(&brokers, &[])?;
        let mut config = PipelineConfig::new(log.clone(), "in", "out");
        config.accept_broker_without_aborts = true;
        let pipeline = transactional::open(w, &config)?;
        let source = SourceConfig::new(log).end(SourceEnd::CurrentEnd);
        let handle = w.dataflow::<u64, _, _>(|scope| {
            let resume = pipeline.source_resume();
            let (values, binding, _) =
                scope.kafka_source_exactly_once(source, "out", resume, |r| parse(r).map(|v| (0, v)));
            pipeline.sink(values.map(|v| (v.to_string(), v.to_string())), binding)
        });
        while w.step_or_park(Some(Duration::from_millis(5))) {}
        Ok(handle.stats().commits)
    });
    let line = result.expect_err("refused").to_string();
    assert!(line.contains("exactly-once source of topic 'out': the pipeline's input is 'in'"), "{line}");
}

#[test]
fn the_broker_down_during_commits_ends_exact() {
    let _deadline = common::deadline();
    let (cluster, brokers) = cluster();
    // 40 ms each way: a commit takes several round trips, so the copy's
    // commits (at least 6) last long enough for the outage to land among them.
    cluster.broker_round_trip_time(1, Duration::from_millis(40)).unwrap();
    let copier = {
        let brokers = brokers.clone();
        std::thread::spawn(move || copy(&brokers, true, false))
    };
    let started = std::time::Instant::now();
    // The probe record, then the first commit's progress record.
    while high_watermark(&brokers, "out.progress", 0) < 3 {
        assert!(started.elapsed() < Duration::from_secs(30), "no commit within 30 s");
        assert!(!copier.is_finished(), "the copy ended before its first commit was seen");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!copier.is_finished(), "the copy ended before the broker went down: make it longer");
    cluster.broker_down(1).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let mid_run = !copier.is_finished();
    cluster.broker_up(1).unwrap();
    assert!(mid_run, "the copy ended while the broker was down");
    let (commits, written) = copier.join().unwrap().unwrap();
    assert_eq!(written, COUNT);
    assert!(commits >= 6, "{commits} commits");
    assert_eq!(read_all(&brokers, "out", 2), expected(COUNT));
}
