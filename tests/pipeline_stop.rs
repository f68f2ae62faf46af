//! A clean stop of an exactly-once pipeline (the source's stop flag, what
//! `word_count --idle-exit` sets) is no end of input: it must commit only
//! the frontier every source partition reached. On Apache Kafka
//! (`KAFKA_BROKERS`), a running count (at each time, the number of records
//! up to it) over two partitions — partition 0 with 5000 records at times
//! 0..=49 (100 per time), partition 1 with one record at time 60 — is
//! stopped when partition 1's record is read, while partition 0 is
//! - still replaying below its binding after a restart, or
//! - behind partition 1 on a first run;
//!
//! then run again to the end. The committed output must be exactly that of
//! a run never stopped: (t, 100(t+1)) for t in 0..=49 and (60, 5001), each
//! once. Committing the closed frontier one past the latest time read (what
//! a real end does) commits (60, n) with n counting only the records read
//! so far, and the records not read yet at later times.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::Stream;
use timely_kafka::connect::source::{KafkaSource, SourceConfig, SourceEnd};
use timely_kafka::connect::transactional::{self, PipelineConfig};
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;
use timely_kafka::{execute, Result};

const BASE_MS: i64 = 1_000_000;
const EARLY: u64 = 5_000;

fn brokers() -> Option<String> {
    let brokers = std::env::var("KAFKA_BROKERS").ok().filter(|b| !b.is_empty());
    if brokers.is_none() {
        println!("pipeline_stop: skipped (set KAFKA_BROKERS to an Apache Kafka with transactions)");
    }
    brokers
}

/// Fresh input (2 partitions) and output (1 partition) topics.
fn topics(brokers: &str, name: &str) -> (String, String) {
    let run = format!("stop-{name}-{}-{}", std::process::id(), rand::random::<u32>());
    let (input, output) = (format!("{run}-in"), format!("{run}-out"));
    let log = KafkaLog::new(brokers, &[]).unwrap();
    log.create_topic(&input, 2, false).unwrap();
    log.create_topic(&output, 1, false).unwrap();
    (input, output)
}

/// Writes `count` records to `partition`, the i-th with timestamp `from_ms + 10 i`.
fn produce(brokers: &str, topic: &str, partition: i32, count: u64, from_ms: i64) {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    for i in 0..count {
        let record =
            BaseRecord::<(), str>::to(topic).partition(partition).payload("a").timestamp(from_ms + 10 * i as i64);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// At each time with records, once complete: (time, records up to and including it).
fn running_count<'scope>(times: Stream<'scope, u64, Vec<()>>) -> Stream<'scope, u64, Vec<(String, String)>> {
    times.unary_frontier::<CapacityContainerBuilder<Vec<(String, String)>>, _, _, _>(
        Exchange::new(|_: &()| 0),
        "RunningCount",
        |_capability, _info| {
            let mut total = 0u64;
            let mut pending = BTreeMap::new();
            move |(input, frontier), output| {
                let port = output.output_index();
                input.for_each_stamp(|capability, data| {
                    let Some(capability) = capability.retain_least(port) else { return };
                    let (_, count) = pending.entry(*capability.time()).or_insert_with(|| (capability, 0u64));
                    *count += data.map(|d| d.len() as u64).sum::<u64>();
                });
                while let Some(entry) = pending.first_entry() {
                    if frontier.frontier().less_equal(entry.key()) {
                        break;
                    }
                    let (capability, count) = entry.remove();
                    total += count;
                    output.session(&capability).give((capability.time().to_string(), total.to_string()));
                }
            }
        },
    )
}

/// What a run did: commits, and partition 0's records read.
struct Ran {
    commits: u64,
    early_read: u64,
}

/// How a counting run ends.
#[derive(Clone, Copy, PartialEq)]
enum End {
    /// At the input's end (`CurrentEnd`).
    Input,
    /// Told to stop when partition 1's record is read; partition 0 is read
    /// slowly (batches of 10, 0.2 ms a record) so the stop lands first.
    StopAtLate,
    /// Live, told to stop once no record arrived for 3 s (what
    /// `word_count --idle-exit` does): every partition idle.
    StopWhenIdle,
}

/// Counts `input` into `output` exactly once, time = seconds since
/// `BASE_MS`, ending as `end` says.
fn count(brokers: &str, input: &str, output: &str, end: End) -> Result<Ran> {
    let stop_at_late = end == End::StopAtLate;
    let (brokers, input, output) = (brokers.to_string(), input.to_string(), output.to_string());
    let stop = Arc::new(AtomicBool::new(false));
    let early_read = Arc::new(AtomicU64::new(0));
    let shared = (stop.clone(), early_read.clone());
    let commits = execute(timely::Config::process(2), move |w| {
        let log = KafkaLog::new(&brokers, &[])?;
        let config = PipelineConfig::new(log.clone(), &input, &output).commit_interval(Duration::from_millis(1));
        let pipeline = transactional::open(w, &config)?;
        let until = if end == End::StopWhenIdle { SourceEnd::Live } else { SourceEnd::CurrentEnd };
        let mut source = SourceConfig::new(log).end(until);
        source.stop = shared.0.clone();
        if stop_at_late {
            source.batch = 10;
        }
        let (stop, early_read) = shared.clone();
        let (idle_stop, read) = shared.clone();
        let handle = w.dataflow::<u64, _, _>(|scope| {
            let resume = pipeline.source_resume();
            let (times, binding, _) = scope.kafka_source_exactly_once(source, &input, resume, move |r| {
                if r.partition == 0 {
                    early_read.fetch_add(1, Ordering::Relaxed);
                    if stop_at_late {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                } else if stop_at_late {
                    stop.store(true, Ordering::Relaxed);
                }
                let time = (r.timestamp_ms? - BASE_MS) / 1000;
                Some((time as u64, ()))
            });
            pipeline.sink(running_count(times.map(|()| ())), binding)
        });
        let (mut seen, mut since) = (0, Instant::now());
        while w.step_or_park(Some(Duration::from_millis(5))) {
            let now = read.load(Ordering::Relaxed);
            if now != seen {
                (seen, since) = (now, Instant::now());
            }
            if end == End::StopWhenIdle && since.elapsed() > Duration::from_secs(3) {
                idle_stop.store(true, Ordering::Relaxed);
            }
        }
        if let Some(error) = handle.error() {
            return Err(error);
        }
        Ok(handle.stats().commits)
    })?;
    Ok(Ran { commits: commits.into_iter().sum(), early_read: early_read.load(Ordering::Relaxed) })
}

/// The committed (time, total) records of `output` (one partition), in order.
fn committed(brokers: &str, output: &str) -> Vec<(u64, u64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "pipeline-stop-check")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(output, 0, Offset::Beginning).unwrap();
    consumer.assign(&list).unwrap();
    let number = |bytes: Option<&[u8]>| std::str::from_utf8(bytes.unwrap()).unwrap().parse::<u64>().unwrap();
    let (mut records, deadline) = (Vec::new(), Instant::now() + Duration::from_secs(60));
    loop {
        assert!(Instant::now() < deadline, "reading '{output}' took over 60 s");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => records.push((number(message.key()), number(message.payload()))),
            Some(Err(KafkaError::PartitionEOF(_))) => return records,
            Some(Err(error)) => panic!("reading '{output}': {error}"),
            None => {}
        }
    }
}

/// What a run never stopped commits.
fn uninterrupted() -> Vec<(u64, u64)> {
    (0..50).map(|t| (t, 100 * (t + 1))).chain([(60, EARLY + 1)]).collect()
}

#[test]
fn a_stop_during_the_replay_commits_nothing_it_did_not_rebuild() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "replay");
    produce(&brokers, &input, 0, EARLY, BASE_MS);
    let first = count(&brokers, &input, &output, End::Input).unwrap();
    assert!(first.commits >= 1 && first.early_read == EARLY, "first run: {} commits", first.commits);
    produce(&brokers, &input, 1, 1, BASE_MS + 60_000);
    // The restart reads partition 0 from its start again (the count is
    // stateful); the stop lands while it is below its binding.
    let stopped = count(&brokers, &input, &output, End::StopAtLate).unwrap();
    assert!(stopped.early_read < EARLY, "the stop landed after the replay ({} records re-read)", stopped.early_read);
    println!("stopped after re-reading {} of {EARLY} records, {} commits", stopped.early_read, stopped.commits);
    count(&brokers, &input, &output, End::Input).unwrap();
    assert_eq!(committed(&brokers, &output), uninterrupted());
}

#[test]
fn a_stop_while_a_partition_lags_commits_only_what_both_reached() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "lag");
    produce(&brokers, &input, 0, EARLY, BASE_MS);
    produce(&brokers, &input, 1, 1, BASE_MS + 60_000);
    let stopped = count(&brokers, &input, &output, End::StopAtLate).unwrap();
    assert!(stopped.early_read < EARLY, "the stop landed after partition 0 was read ({} records)", stopped.early_read);
    println!("stopped after {} of {EARLY} records of partition 0, {} commits", stopped.early_read, stopped.commits);
    count(&brokers, &input, &output, End::Input).unwrap();
    assert_eq!(committed(&brokers, &output), uninterrupted());
}

/// Stopped once every partition is idle (no record for 3 s, longer than
/// the 1 s idle timeout): nothing is left to read, so the stop commits
/// everything read, the last time included.
#[test]
fn a_stop_once_every_partition_is_idle_commits_everything_read() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "idle");
    produce(&brokers, &input, 0, EARLY, BASE_MS);
    produce(&brokers, &input, 1, 1, BASE_MS + 60_000);
    let stopped = count(&brokers, &input, &output, End::StopWhenIdle).unwrap();
    assert_eq!(stopped.early_read, EARLY);
    assert_eq!(committed(&brokers, &output), uninterrupted());
}
