//! The exactly-once sink sends outputs into the open transaction as they
//! arrive (`sink.rs`, `Early`). On Apache Kafka (`KAFKA_BROKERS`), the three ways
//! that can end:
//!
//! - every output at one time: the one commit at the end takes the records
//!   sent early, and nothing is aborted (a read_uncommitted reader sees
//!   exactly the committed records);
//! - outputs at many times, a size bound that makes every commit stop at a
//!   time boundary: a commit falls due while later times were sent early, so
//!   those are aborted and committed the usual way — a read_uncommitted
//!   reader sees more records than were committed, and the committed output
//!   is still exact;
//! - every output at one time over a run longer than the transaction
//!   timeout: the sink aborts what it sent early once the transaction has
//!   been open half that timeout, and commits it the usual way.
//!
//! The first two then start again on the same topics: everything is committed,
//! so nothing is written twice.

mod common;

use std::time::Duration;

use common::records::{expected, parse, produce, read_all};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use timely::dataflow::operators::vec::Map;
use timely_kafka::connect::exactly_once::{self, ExactlyOnceConfig};
use timely_kafka::connect::source::{kafka_source_exactly_once, SourceConfig, SourceEnd};
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;
use timely_kafka::{execute, CodecId, Result};

const WORKERS: usize = 3;
const COUNT: u64 = 3_000;

fn brokers() -> Option<String> {
    let brokers = std::env::var("KAFKA_BROKERS").ok().filter(|b| !b.is_empty());
    if brokers.is_none() {
        println!("pipeline_early: skipped (set KAFKA_BROKERS to an Apache Kafka with transactions)");
    }
    brokers
}

/// Fresh input (3 partitions, `COUNT` numbers) and output (2 partitions) topics.
fn topics(brokers: &str, name: &str) -> (String, String) {
    let run = format!("early-{name}-{}-{}", std::process::id(), rand::random::<u32>());
    let (input, output) = (format!("{run}-in"), format!("{run}-out"));
    let log = KafkaLog::new(brokers, &[]).unwrap();
    log.create_topic(&input, 3, CodecId::None, false).unwrap();
    log.create_topic(&output, 2, CodecId::None, false).unwrap();
    produce(brokers, &input, 3, COUNT, 1_000_000);
    (input, output)
}

/// How a copy runs.
#[derive(Clone, Copy)]
struct Run {
    max_bytes: usize,
    time: fn(u64) -> u64,
    transaction_timeout: Duration,
    /// Work per record, to make a run last.
    per_record: Duration,
    /// Records the source reads per activation, if not its default.
    batch: Option<usize>,
}

impl Run {
    fn new(max_bytes: usize, time: fn(u64) -> u64) -> Run {
        Run { max_bytes, time, transaction_timeout: Duration::from_secs(60), per_record: Duration::ZERO, batch: None }
    }
}

/// Copies `input` to `output` exactly once, each record at time
/// `time(offset)`; returns the commits and records written.
fn copy(brokers: &str, input: &str, output: &str, how: Run) -> Result<(u64, u64)> {
    let (brokers, input, output) = (brokers.to_string(), input.to_string(), output.to_string());
    let Run { max_bytes, time, transaction_timeout, per_record, batch } = how;
    let per_worker = execute(timely::Config::process(WORKERS), move |w| {
        let log = KafkaLog::new(&brokers, &[])?;
        let mut config = ExactlyOnceConfig::new(log.clone(), &input, &output).commit_interval(Duration::from_millis(1));
        config.max_transaction_bytes = max_bytes;
        config.transaction_timeout = transaction_timeout;
        let pipeline = exactly_once::open(w, &config)?;
        let mut source = SourceConfig::new(log).end(SourceEnd::CurrentEnd);
        source.batch = batch.unwrap_or(source.batch);
        let handle = w.dataflow::<u64, _, _>(|scope| {
            let resume = pipeline.source_resume();
            let (values, binding) = kafka_source_exactly_once(scope, source, &input, resume, move |r| {
                std::thread::sleep(per_record);
                parse(r).map(|v| (time(r.offset), v))
            });
            pipeline.sink(values.map(|v| (v.to_string(), v.to_string())), binding)
        });
        while w.step_or_park(Some(Duration::from_millis(5))) {}
        if let Some(error) = handle.status().error() {
            return Err(timely_kafka::Error::Dataflow(error));
        }
        Ok((handle.commits(), handle.written()))
    })?;
    Ok(per_worker.into_iter().fold((0, 0), |(c, r), (commits, written)| (c + commits, r + written)))
}

/// Data records in `topic` as a read_uncommitted reader sees them: the
/// committed ones and those of aborted transactions.
fn uncommitted_records(brokers: &str, topic: &str, partitions: i32) -> u64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "pipeline-early-check")
        .set("isolation.level", "read_uncommitted")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&list).unwrap();
    let (mut records, mut ended) = (0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ended < partitions {
        assert!(std::time::Instant::now() < deadline, "reading '{topic}' took over 60 s");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => records += 1,
            Some(Err(KafkaError::PartitionEOF(_))) => ended += 1,
            Some(Err(error)) => panic!("reading '{topic}': {error}"),
            None => {}
        }
    }
    records
}

#[test]
fn outputs_at_one_time_go_out_early_and_commit_once() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "one-time");
    let (commits, written) = copy(&brokers, &input, &output, Run::new(16 << 20, |_| 0)).unwrap();
    assert_eq!((commits, written), (1, COUNT), "one time, one commit of everything");
    assert_eq!(read_all(&brokers, &output, 2), expected(COUNT));
    assert_eq!(uncommitted_records(&brokers, &output, 2), COUNT, "nothing sent early was aborted");
    assert_eq!(copy(&brokers, &input, &output, Run::new(16 << 20, |_| 0)).unwrap(), (0, 0));
    assert_eq!(read_all(&brokers, &output, 2), expected(COUNT));
}

#[test]
fn a_commit_that_cannot_take_what_was_sent_early_aborts_it_and_stays_exact() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "many-times");
    // 100 times of 10 records per partition; ~23 KB of output against a
    // 2 KB bound: every commit stops at the first time boundary past it.
    let (commits, written) = copy(&brokers, &input, &output, Run::new(2_000, |offset| offset / 10)).unwrap();
    assert_eq!(written, COUNT);
    assert!(commits >= 10, "{commits} commits of at most ~2.3 KB for ~23 KB of output");
    assert_eq!(read_all(&brokers, &output, 2), expected(COUNT));
    let seen = uncommitted_records(&brokers, &output, 2);
    assert!(seen > COUNT, "no record sent early was aborted ({seen} records, {COUNT} committed)");
    assert_eq!(copy(&brokers, &input, &output, Run::new(2_000, |offset| offset / 10)).unwrap(), (0, 0));
    assert_eq!(read_all(&brokers, &output, 2), expected(COUNT));
}

#[test]
fn early_outputs_held_open_for_half_the_transaction_timeout_are_aborted_in_time() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "held-open");
    // One time, read 50 records at a time for about 5 s, a 4 s transaction
    // timeout: the transaction holding the early outputs must be aborted by
    // the sink after 2 s, before the broker aborts it and fences the writer.
    let how = Run {
        transaction_timeout: Duration::from_secs(4),
        per_record: Duration::from_millis(5),
        batch: Some(50),
        ..Run::new(16 << 20, |_| 0)
    };
    let started = std::time::Instant::now();
    let (commits, written) = copy(&brokers, &input, &output, how).unwrap();
    assert!(started.elapsed() > Duration::from_secs(4), "the run did not outlast the transaction timeout");
    assert_eq!((commits, written), (1, COUNT));
    assert_eq!(read_all(&brokers, &output, 2), expected(COUNT));
    let seen = uncommitted_records(&brokers, &output, 2);
    assert!(seen > COUNT, "the early outputs were not aborted ({seen} records, {COUNT} committed)");
}
