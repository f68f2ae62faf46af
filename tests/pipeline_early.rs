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
//!   been open for half of what that timeout leaves past a commit's own
//!   timeout, and commits it the usual way.
//!
//! The first two then start again on the same topics: everything is committed,
//! so nothing is written twice.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::records::{expected, parse, produce, produce_range, read_all};
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewPartitions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use timely::dataflow::operators::vec::Map;
use timely_kafka::connect::source::{KafkaSource, SourceConfig, SourceEnd};
use timely_kafka::connect::transactional::{self, PipelineConfig};
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;
use timely_kafka::{execute, Result};

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
    log.create_topic(&input, 3, false).unwrap();
    log.create_topic(&output, 2, false).unwrap();
    produce(brokers, &input, 3, COUNT, 1_000_000);
    (input, output)
}

/// How a copy runs.
#[derive(Clone, Copy)]
struct Run {
    max_bytes: usize,
    time: fn(u64) -> u64,
    transaction_timeout: Duration,
    /// `PipelineConfig::timeout`: below `transaction_timeout`.
    timeout: Duration,
    /// Work per record, to make a run last.
    per_record: Duration,
    /// Records the source reads per activation, if not its default.
    batch: Option<usize>,
    /// The pipeline's identity, if not the default one.
    identity: Option<&'static str>,
    /// `PipelineConfig::fresh`.
    fresh: bool,
    /// `PipelineConfig::replay_from_start`.
    replay_from_start: bool,
    /// Partition 0's first record waits until every other partition has
    /// been read: outputs at later times then reach the sink before its
    /// frontier passes the early ones, whatever the fetches deliver when.
    hold_partition_0: bool,
}

impl Run {
    fn new(max_bytes: usize, time: fn(u64) -> u64) -> Run {
        let transaction_timeout = Duration::from_secs(60);
        Run {
            max_bytes,
            time,
            transaction_timeout,
            timeout: Duration::from_secs(30),
            per_record: Duration::ZERO,
            batch: None,
            identity: None,
            fresh: false,
            replay_from_start: true,
            hold_partition_0: false,
        }
    }
}

/// Copies `input` to `output` exactly once, each record at time
/// `time(offset)`; returns the commits and records written.
fn copy(brokers: &str, input: &str, output: &str, how: Run) -> Result<(u64, u64)> {
    copy_counted(brokers, input, output, how).map(|(commits, written, _)| (commits, written))
}

/// [`copy`], and the records sent early and aborted.
fn copy_counted(brokers: &str, input: &str, output: &str, how: Run) -> Result<(u64, u64, u64)> {
    let (brokers, input, output) = (brokers.to_string(), input.to_string(), output.to_string());
    let Run {
        max_bytes,
        time,
        transaction_timeout,
        timeout,
        per_record,
        batch,
        identity,
        fresh,
        replay_from_start,
        hold_partition_0,
    } = how;
    let others_read = Arc::new(AtomicU64::new(0));
    let per_worker = execute(timely::Config::process(WORKERS), move |w| {
        let log = KafkaLog::new(&brokers, &[])?;
        let mut config = PipelineConfig::new(log.clone(), &input, &output).commit_interval(Duration::from_millis(1));
        config.max_transaction_bytes = max_bytes;
        config.fresh = fresh;
        config.replay_from_start = replay_from_start;
        if let Some(identity) = identity {
            config.transactional_id = identity.to_string();
        }
        config.transaction_timeout = transaction_timeout;
        config.timeout = timeout;
        let pipeline = transactional::open(w, &config)?;
        let mut source = SourceConfig::new(log).end(SourceEnd::CurrentEnd);
        source.batch = batch.unwrap_or(source.batch);
        let others_read = others_read.clone();
        let handle = w.dataflow::<u64, _, _>(|scope| {
            let resume = pipeline.source_resume();
            let (values, binding, _) = scope.kafka_source_exactly_once(source, &input, resume, move |r| {
                std::thread::sleep(per_record);
                if hold_partition_0 && r.partition != 0 {
                    others_read.fetch_add(1, Ordering::Relaxed);
                } else if hold_partition_0 && r.offset == 0 {
                    let (others, bound) = (COUNT - COUNT / 3, Instant::now() + Duration::from_secs(60));
                    while others_read.load(Ordering::Relaxed) < others && Instant::now() < bound {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                parse(r).map(|v| (time(r.offset), v))
            });
            pipeline.sink(values.map(|v| (v.to_string(), v.to_string())), binding)
        });
        while w.step_or_park(Some(Duration::from_millis(5))) {}
        if let Some(error) = handle.error() {
            return Err(error);
        }
        Ok((handle.stats().commits, handle.stats().written, handle.stats().aborted_early))
    })?;
    Ok(per_worker
        .into_iter()
        .fold((0, 0, 0), |(c, r, a), (commits, written, aborted)| (c + commits, r + written, a + aborted)))
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
    let deadline = Instant::now() + Duration::from_secs(60);
    while ended < partitions {
        assert!(Instant::now() < deadline, "reading '{topic}' took over 60 s");
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
    let counted = copy_counted(&brokers, &input, &output, Run::new(16 << 20, |_| 0)).unwrap();
    assert_eq!(counted, (1, COUNT, 0), "one time, one commit of everything, nothing aborted");
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
    // Partitions 1 and 2 are read before partition 0, so outputs at times
    // up to 99 are sent early before the first commit (at most ~14 times).
    // Unheld, fetches delivered in small pieces let the frontier keep pace
    // with the outputs and no commit ever met an early record past it.
    let held = Run { hold_partition_0: true, ..Run::new(2_000, |offset| offset / 10) };
    let (commits, written, aborted) = copy_counted(&brokers, &input, &output, held).unwrap();
    assert_eq!(written, COUNT);
    assert!(commits >= 10, "{commits} commits of at most ~2.3 KB for ~23 KB of output");
    assert!(aborted > 0, "no record sent early was aborted ({commits} commits)");
    assert_eq!(read_all(&brokers, &output, 2), expected(COUNT));
    // Aborted records may never have left the client (an abort purges
    // what is still queued): a read_uncommitted reader sees at most them.
    let seen = uncommitted_records(&brokers, &output, 2);
    assert!((COUNT..=COUNT + aborted).contains(&seen), "{seen} records, {COUNT} committed, {aborted} aborted");
    assert_eq!(copy(&brokers, &input, &output, Run::new(2_000, |offset| offset / 10)).unwrap(), (0, 0));
    assert_eq!(read_all(&brokers, &output, 2), expected(COUNT));
}

#[test]
fn early_outputs_held_open_past_their_budget_are_aborted_in_time() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "held-open");
    // One time, read 50 records at a time for about 9 s, an 8 s transaction
    // timeout and a 3 s commit timeout: the transaction holding the early
    // outputs must be aborted by the sink after (8 - 3) / 2 = 2.5 s, before
    // the broker aborts it and fences the writer.
    let how = Run {
        transaction_timeout: Duration::from_secs(8),
        timeout: Duration::from_secs(3),
        per_record: Duration::from_millis(9),
        batch: Some(50),
        ..Run::new(16 << 20, |_| 0)
    };
    let started = Instant::now();
    let (commits, written, aborted) = copy_counted(&brokers, &input, &output, how).unwrap();
    assert!(started.elapsed() > Duration::from_secs(8), "the run did not outlast the transaction timeout");
    assert_eq!((commits, written), (1, COUNT));
    assert!(aborted > 0, "the early outputs were not aborted");
    assert_eq!(read_all(&brokers, &output, 2), expected(COUNT));
    // The first went out 2.5 s before the abort; the last may have been purged.
    let seen = uncommitted_records(&brokers, &output, 2);
    assert!(seen > COUNT && seen <= COUNT + aborted, "{seen} records, {COUNT} committed, {aborted} aborted");
}

/// A transaction another writer left open on `<output>.progress` (a
/// pipeline sharing it died mid-commit): a start must not stop reading the
/// progress at the open transaction and resume from the commit before it,
/// which wrote every output since a second time. It waits for the
/// transaction and refuses in one line naming it; once it is aborted, the
/// pipeline resumes from its newest commit and the output is exact.
#[test]
fn a_transaction_left_open_on_the_progress_topic_never_resumes_from_an_older_commit() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "open-progress");
    let by_tens = |offset: u64| offset / 10;
    let (commits, written) = copy(&brokers, &input, &output, Run::new(16 << 20, by_tens)).unwrap();
    assert!(commits >= 1 && written == COUNT, "first run: {commits} commits, {written} written");
    let other: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("transactional.id", format!("{output}-another-writer"))
        .set("transaction.timeout.ms", "120000")
        .create()
        .unwrap();
    other.init_transactions(Duration::from_secs(30)).unwrap();
    other.begin_transaction().unwrap();
    let progress = format!("{output}.progress");
    other
        .send(BaseRecord::to(&progress).partition(0).key("another-writer").payload("open"))
        .map_err(|(e, _)| e)
        .unwrap();
    other.flush(Duration::from_secs(30)).unwrap();
    produce_range(&brokers, &input, 3, COUNT..2 * COUNT, 1_000_000);
    let refused = copy(&brokers, &input, &output, Run::new(16 << 20, by_tens)).expect_err("an open transaction ahead");
    let line = refused.to_string();
    assert!(line.contains(&progress) && line.contains("still open") && !line.contains('\n'), "{line}");
    other.abort_transaction(Duration::from_secs(30)).unwrap();
    let (_, written) = copy(&brokers, &input, &output, Run::new(16 << 20, by_tens)).unwrap();
    assert_eq!(written, COUNT, "the second run writes the new records once");
    assert_eq!(copy(&brokers, &input, &output, Run::new(16 << 20, by_tens)).unwrap(), (0, 0));
    assert_eq!(read_all(&brokers, &output, 2), expected(2 * COUNT));
}

/// The input topic deleted and created again with fewer records than the
/// last commit read: the next start refuses in one line (by the topic id;
/// on a broker without ids, by the partition that ends before the binding)
/// instead of reading nothing and exiting 0.
#[test]
fn an_input_topic_created_again_is_refused_naming_the_partition() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "recreated");
    assert_eq!(copy(&brokers, &input, &output, Run::new(16 << 20, |_| 0)).unwrap().1, COUNT);
    let log = KafkaLog::new(&brokers, &[]).unwrap();
    log.create_topic(&input, 3, true).unwrap();
    produce(&brokers, &input, 3, 100, 1_000_000);
    let refused = copy(&brokers, &input, &output, Run::new(16 << 20, |_| 0)).expect_err("a recreated input");
    let line = refused.to_string();
    assert!(line.contains(&format!("topic '{input}'")) && line.contains("created again"), "{line}");
    assert!(!line.contains('\n'), "{line}");
}

/// The input topic deleted and created again, then written past the last
/// commit's binding before the next start: the offsets are all there, but
/// they name other records. The topic id stored with the commit differs
/// from the new topic's, and the start refuses in one line; nothing is
/// written. (Before: the run resumed at the old binding, skipping the new
/// topic's first records and exiting 0.)
#[test]
fn an_input_topic_created_again_and_grown_past_the_binding_is_refused_by_its_id() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "regrown");
    assert_eq!(copy(&brokers, &input, &output, Run::new(16 << 20, |_| 0)).unwrap().1, COUNT);
    let log = KafkaLog::new(&brokers, &[]).unwrap();
    log.create_topic(&input, 3, true).unwrap();
    produce_range(&brokers, &input, 3, 5_000_000..5_000_000 + 2 * COUNT, 1_000_000);
    let refused = copy(&brokers, &input, &output, Run::new(16 << 20, |_| 0)).expect_err("a recreated input");
    let line = refused.to_string();
    assert!(line.contains(&format!("topic '{input}' was deleted and created again")), "{line}");
    assert!(line.contains("topic id") && !line.contains('\n'), "{line}");
    assert_eq!(read_all(&brokers, &output, 2), expected(COUNT), "nothing written after the refusal");
}

/// The progress topic is created compacted, without time or size
/// retention: the broker refuses to delete its records, and a restart
/// resumes. Once an operator allows deletion and deletes them (as
/// retention does to a pipeline idle past `retention.ms`), the next start
/// finds no commit and refuses in one line instead of starting over and
/// writing every output again; nothing is written. A progress topic whose
/// settings delete records by age is refused at start.
#[test]
fn progress_deleted_is_refused_instead_of_starting_over() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "progress-deleted");
    let copy_all = || copy(&brokers, &input, &output, Run::new(16 << 20, |_| 0));
    assert_eq!(copy_all().unwrap().1, COUNT);
    let progress = format!("{output}.progress");
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let described =
        futures_executor::block_on(admin.describe_configs(&[ResourceSpecifier::Topic(&progress)], &options)).unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    let value = |key: &str| resource.get(key).and_then(|e| e.value.clone()).unwrap_or_default();
    assert_eq!((value("cleanup.policy"), value("retention.ms")), ("compact".into(), "-1".into()));
    let delete_all = || {
        let reader: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
        let (_, end) = reader.fetch_watermarks(&progress, 0, Duration::from_secs(30)).unwrap();
        let mut upto = TopicPartitionList::new();
        upto.add_partition_offset(&progress, 0, Offset::Offset(end)).unwrap();
        let deleted = futures_executor::block_on(admin.delete_records(&upto, &options)).unwrap();
        deleted.elements().first().map(|e| e.error().map_err(|e| e.to_string())).unwrap()
    };
    let refused = delete_all().expect_err("a compacted topic's records cannot be deleted");
    assert!(refused.contains("PolicyViolation"), "{refused}");
    assert_eq!(copy_all().unwrap(), (0, 0), "the commits survived");
    let alter = |pairs: &[(&str, &str)]| {
        let mut change = AlterConfig::new(ResourceSpecifier::Topic(&progress));
        for (key, value) in pairs {
            change = change.set(key, value);
        }
        let altered = futures_executor::block_on(admin.alter_configs(&[change], &options)).unwrap();
        altered.into_iter().for_each(|r| drop(r.unwrap()));
    };
    alter(&[("cleanup.policy", "compact,delete"), ("retention.ms", "-1"), ("retention.bytes", "-1")]);
    delete_all().expect("deletable once the policy allows it");
    let line = copy_all().expect_err("the commits were deleted").to_string();
    assert!(line.contains(&progress) && line.contains("were deleted") && !line.contains('\n'), "{line}");
    assert_eq!(read_all(&brokers, &output, 2), expected(COUNT), "nothing written twice");
    alter(&[("cleanup.policy", "delete"), ("retention.ms", "604800000"), ("retention.bytes", "-1")]);
    let line = copy_all().expect_err("settings that delete commits").to_string();
    assert!(line.contains("retention.ms=604800000") && line.contains("cleanup.policy=compact"), "{line}");
}

/// No commit of this pipeline, but the output holds committed records (the
/// pipeline's identity changed, or its progress is gone): the start refuses
/// in one line naming the output; `fresh` starts over on purpose.
#[test]
fn no_commit_but_committed_output_is_refused_unless_starting_over() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "identity-changed");
    assert_eq!(copy(&brokers, &input, &output, Run::new(16 << 20, |_| 0)).unwrap().1, COUNT);
    let renamed = Run { identity: Some("timely-kafka-test.renamed"), ..Run::new(16 << 20, |_| 0) };
    let line = copy(&brokers, &input, &output, renamed).expect_err("committed output, no commit").to_string();
    assert!(line.contains(&format!("output topic '{output}'")) && line.contains("fresh"), "{line}");
    assert_eq!(read_all(&brokers, &output, 2), expected(COUNT), "nothing written by the refused start");
    let fresh = Run { fresh: true, ..renamed };
    assert_eq!(copy(&brokers, &input, &output, fresh).unwrap().1, COUNT, "starting over writes everything again");
}

/// A compacted input, replayed from its start to rebuild state (the
/// default): compaction removed older records of each key, so the rebuilt
/// state would silently differ from the committed one. Refused in one line
/// naming the topic and its policy; a stateless pipeline (no replay) runs.
#[test]
fn a_compacted_input_replayed_from_its_start_is_refused() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "compacted");
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let mut change = AlterConfig::new(ResourceSpecifier::Topic(&input));
    change = change.set("cleanup.policy", "compact");
    let altered = futures_executor::block_on(admin.alter_configs(&[change], &options)).unwrap();
    altered.into_iter().for_each(|r| drop(r.unwrap()));
    let refused = copy(&brokers, &input, &output, Run::new(16 << 20, |_| 0)).expect_err("a compacted input");
    let line = refused.to_string();
    assert!(line.contains(&format!("input topic '{input}' is compacted (cleanup.policy=compact)")), "{line}");
    assert!(!line.contains('\n'), "{line}");
    let stateless = Run { replay_from_start: false, ..Run::new(16 << 20, |_| 0) };
    assert_eq!(copy(&brokers, &input, &output, stateless).unwrap(), (1, COUNT));
    assert_eq!(read_all(&brokers, &output, 2), expected(COUNT));
}

/// Partitions added to the input while a live pipeline runs: its sources
/// read only the partitions they were assigned at start, so records in the
/// new ones would go unread until a restart, silently. The pipeline fails
/// in one line saying partitions were added, and the next start reads them:
/// the output is exact.
#[test]
fn partitions_added_while_running_fail_the_pipeline_and_the_next_start_reads_them() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "added");
    let live = {
        let (brokers, input, output) = (brokers.clone(), input.clone(), output.clone());
        std::thread::spawn(move || {
            execute(timely::Config::process(2), move |w| {
                let log = KafkaLog::new(&brokers, &[])?;
                let config =
                    PipelineConfig::new(log.clone(), &input, &output).commit_interval(Duration::from_millis(50));
                let pipeline = transactional::open(w, &config)?;
                let mut source = SourceConfig::new(log);
                source.partition_check = Duration::from_millis(500);
                let handle = w.dataflow::<u64, _, _>(|scope| {
                    let resume = pipeline.source_resume();
                    let (values, binding, _) = scope
                        .kafka_source_exactly_once(source, &input, resume, |r| parse(r).map(|v| (r.offset / 10, v)));
                    pipeline.sink(values.map(|v| (v.to_string(), v.to_string())), binding)
                });
                let started = Instant::now();
                while w.step_or_park(Some(Duration::from_millis(5))) {
                    assert!(started.elapsed() < Duration::from_secs(120), "the live pipeline ran on for 120 s");
                }
                Ok(handle.stats().commits)
            })
        })
    };
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let progress = format!("{output}.progress");
    let started = Instant::now();
    // The probe record, then a commit.
    // (The progress topic appears once the pipeline has started.)
    while consumer.fetch_watermarks(&progress, 0, Duration::from_secs(10)).map_or(0, |(_, high)| high) < 3 {
        assert!(started.elapsed() < Duration::from_secs(60), "no commit within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let added = futures_executor::block_on(admin.create_partitions(&[NewPartitions::new(&input, 4)], &options));
    added.unwrap().into_iter().for_each(|r| drop(r.unwrap()));
    produce_range(&brokers, &input, 4, COUNT..COUNT + 4 * 25, 2_000_000);
    let line = live.join().unwrap().expect_err("partitions were added").to_string();
    assert!(
        line.contains(&format!("topic '{input}': partitions were added while the pipeline ran (4, was 3)")),
        "{line}"
    );
    assert!(!line.contains('\n'), "{line}");
    copy(&brokers, &input, &output, Run::new(16 << 20, |offset| offset / 10)).unwrap();
    assert_eq!(read_all(&brokers, &output, 2), expected(COUNT + 100));
}
