//! Exactly-once pipelines with declared keyed state, on Apache Kafka (set
//! `KAFKA_BROKERS`; skipped with a printed line otherwise).
//!
//! A pipeline counts and sums the values of its input per key (`v % 13`)
//! and declares those sums its state: a restart restores them from the
//! changelog and reads the input only from the binding. Checked here:
//! input deleted below the binding (DeleteRecords) after a commit does not
//! matter, with another worker count, and the output stays exact; a
//! missing or corrupt changelog is refused in one line naming topic and
//! partition, and nothing is written. The same pipeline with its state
//! kept in its output topic (`PipelineConfig::state_in_output`) restores
//! from the output, writes no changelog, and refuses an output whose
//! settings would delete records. A start finds its last commit behind
//! another writer's records in its progress topic, and the topics it
//! creates close their segments within an hour (compaction needs it).

mod common;

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Map, ToStream};
use timely::dataflow::Stream;
use timely_kafka::connect::source::{KafkaSource, SourceConfig, SourceEnd};
use timely_kafka::connect::transactional::{self, changelog_topic, PipelineConfig};
use timely_kafka::log::{kafka::KafkaLog, LogBackend};
use timely_kafka::Result;

use common::records::{parse, produce_range};

const KEYS: u64 = 13;
const STATE: &str = "sums";
const PARTITIONS: u64 = 2;

fn brokers() -> Option<String> {
    let brokers = std::env::var("KAFKA_BROKERS").ok();
    if brokers.is_none() {
        println!("pipeline_state: skipped (set KAFKA_BROKERS to an Apache Kafka with transactions)");
    }
    brokers
}

fn topics(brokers: &str, name: &str) -> (String, String) {
    let log = KafkaLog::new(brokers, &[]).unwrap();
    let input = format!("state-{name}-{}", std::process::id());
    let output = format!("{input}-out");
    log.create_topic(&input, PARTITIONS as u32, false).unwrap();
    log.create_topic(&output, 2, false).unwrap();
    (input, output)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// What one run did, summed over its workers.
#[derive(Debug, Default)]
struct Ran {
    /// Input records read.
    read: u64,
    /// Keys restored.
    restored: u64,
    written: u64,
}

/// A key and its (count, sum).
type Total = (u64, (u64, u64));

/// Per key, (count, sum) of the values: `restored` first (time 0), then,
/// once the frontier passed a time, the new totals of the keys changed at it.
fn sums<'scope>(
    values: Stream<'scope, u64, Vec<u64>>,
    restored: Stream<'scope, u64, Vec<Total>>,
) -> Stream<'scope, u64, Vec<Total>> {
    values.binary_frontier::<_, CapacityContainerBuilder<Vec<Total>>, _, _, _, _>(
        restored,
        Exchange::new(|v: &u64| v % KEYS),
        Exchange::new(|(key, _): &(u64, (u64, u64))| *key),
        "Sums",
        |_, _| {
            let mut totals = HashMap::<u64, (u64, u64)>::new();
            let mut pending = BTreeMap::new();
            move |(input, frontier), (restored, restored_frontier), output| {
                restored.for_each(|_, data| totals.extend(data.drain(..)));
                let port = output.output_index();
                input.for_each_stamp(|capability, data| {
                    let Some(capability) = capability.retain_least(port) else { return };
                    let (_, values) = pending.entry(*capability.time()).or_insert_with(|| (capability, Vec::new()));
                    values.extend(data.flat_map(|d| d.drain(..)));
                });
                while let Some(entry) = pending.first_entry() {
                    if frontier.frontier().less_equal(entry.key())
                        || restored_frontier.frontier().less_equal(entry.key())
                    {
                        break;
                    }
                    let (capability, values) = entry.remove();
                    let mut changed = BTreeMap::new();
                    for v in values {
                        let total = totals.entry(v % KEYS).or_default();
                        *total = (total.0 + 1, total.1 + v);
                        changed.insert(v % KEYS, *total);
                    }
                    output.session(&capability).give_iterator(changed.into_iter());
                }
            }
        },
    )
}

/// Runs the pipeline over the input to its current end with `workers`.
fn run(brokers: &str, input: &str, output: &str, workers: usize, state_partitions: Option<u32>) -> Result<Ran> {
    run_with(brokers, input, output, workers, state_partitions, true)
}

/// [`run`]; `give_changes`: false leaves the state's changes out of the sink.
fn run_with(
    brokers: &str,
    input: &str,
    output: &str,
    workers: usize,
    state_partitions: Option<u32>,
    give_changes: bool,
) -> Result<Ran> {
    run_mode(brokers, input, output, workers, state_partitions, give_changes, false)
}

/// An output record `key` → `count,sum` as an entry of the state.
fn decode_total(key: &[u8], value: &[u8]) -> std::result::Result<(u64, (u64, u64)), String> {
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string());
    let key = text(key)?.parse::<u64>().map_err(|e| format!("key: {e}"))?;
    let value = text(value)?;
    let (count, sum) = value.split_once(',').ok_or_else(|| format!("value {value:?}: no comma"))?;
    let number = |s: &str| s.parse::<u64>().map_err(|e| format!("value {value:?}: {e}"));
    Ok((key, (number(count)?, number(sum)?)))
}

/// [`run_with`]; `in_output`: the state is kept in the output topic
/// (`state_in_output`), restored with [`decode_total`].
fn run_mode(
    brokers: &str,
    input: &str,
    output: &str,
    workers: usize,
    state_partitions: Option<u32>,
    give_changes: bool,
    in_output: bool,
) -> Result<Ran> {
    let (brokers, input, output) = (brokers.to_string(), input.to_string(), output.to_string());
    let ran = timely_kafka::execute(timely::Config::process(workers), move |w| {
        let log = KafkaLog::new(&brokers, &[]).unwrap();
        let config = PipelineConfig::new(log.clone(), &input, &output);
        let mut config = if in_output { config.state_in_output(STATE) } else { config.state(STATE) };
        config.state_partitions = state_partitions;
        let pipeline = transactional::open(w, &config)?;
        let (restored, stats) = if in_output {
            pipeline.restore_with(w, STATE, decode_total)?
        } else {
            pipeline.restore::<u64, (u64, u64)>(w, STATE)?
        };
        let read = Rc::new(Cell::new(0u64));
        let counted = read.clone();
        let source = SourceConfig::new(log).end(SourceEnd::CurrentEnd);
        let handle = w.dataflow::<u64, _, _>(|scope| {
            let resume = pipeline.source_resume();
            let (values, binding, _) = scope.kafka_source_exactly_once(source, &input, resume, move |r| {
                counted.set(counted.get() + 1);
                // A time per 50 offsets: several commits per run.
                parse(r).map(|v| (r.offset / 50, v))
            });
            let totals = sums(values, restored.to_stream(scope));
            let records = totals.clone().map(|(key, (count, sum))| (key.to_string(), format!("{count},{sum}")));
            if in_output {
                // The outputs are the state's changes.
                return Ok::<_, timely_kafka::Error>(pipeline.sink(records, binding));
            }
            let changes = pipeline.changes(STATE, totals.map(|(key, total)| (key, Some(total))))?;
            let changes = if give_changes { vec![changes] } else { Vec::new() };
            Ok::<_, timely_kafka::Error>(pipeline.sink_with_state(records, binding, changes))
        })?;
        while w.step_or_park(Some(Duration::from_millis(5))) {}
        if let Some(error) = handle.error() {
            return Err(error);
        }
        Ok(Ran { read: read.get(), restored: stats.keys, written: handle.stats().written })
    })?;
    Ok(ran.into_iter().fold(Ran::default(), |a, b| Ran {
        read: a.read + b.read,
        restored: a.restored + b.restored,
        written: a.written + b.written,
    }))
}

/// The output, read with read_committed: per key, its (count, sum) records in order.
fn read_output(brokers: &str, output: &str) -> BTreeMap<u64, Vec<(u64, u64)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "pipeline-state-check")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..2 {
        list.add_partition_offset(output, partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&list).unwrap();
    let (mut per_key, mut ended) = (BTreeMap::<u64, Vec<(u64, u64)>>::new(), 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ended < 2 {
        assert!(std::time::Instant::now() < deadline, "the output was not read to its end within 60 s");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let key = std::str::from_utf8(message.key().unwrap()).unwrap().parse().unwrap();
                let value = std::str::from_utf8(message.payload().unwrap()).unwrap();
                let (count, sum) = value.split_once(',').unwrap();
                per_key.entry(key).or_default().push((count.parse().unwrap(), sum.parse().unwrap()));
            }
            Some(Err(KafkaError::PartitionEOF(_))) => ended += 1,
            _ => {}
        }
    }
    per_key
}

/// The output is exactly that of one uninterrupted run over `0..total`:
/// per key, counts strictly increase (no record twice, none lost between
/// commits) and the last (count, sum) is the key's over the input.
fn assert_exact(brokers: &str, output: &str, total: u64) {
    let per_key = read_output(brokers, output);
    assert_eq!(per_key.len() as u64, KEYS.min(total), "{per_key:?}");
    for (key, records) in &per_key {
        assert!(records.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1), "key {key}: {records:?}");
        let values = (0..total).filter(|v| v % KEYS == *key);
        let expected = (values.clone().count() as u64, values.sum::<u64>());
        assert_eq!(records.last(), Some(&expected), "key {key}");
    }
}

/// The low and high watermarks of `partition` of `topic` (read_uncommitted).
fn watermarks(brokers: &str, topic: &str, partition: u32) -> (u64, u64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("isolation.level", "read_uncommitted")
        .create()
        .unwrap();
    let (low, high) = consumer.fetch_watermarks(topic, partition as i32, Duration::from_secs(10)).unwrap();
    (low as u64, high as u64)
}

fn admin(brokers: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap()
}

#[test]
fn input_deleted_below_the_binding_restarts_exactly_with_another_worker_count() {
    let Some(brokers) = brokers() else { return };
    let _deadline = common::deadline();
    let (input, output) = topics(&brokers, "deleted");
    const BATCH: u64 = 1000;
    produce_range(&brokers, &input, PARTITIONS, 0..BATCH, now_ms());
    let first = run(&brokers, &input, &output, 2, None).unwrap();
    assert_eq!((first.read, first.restored), (BATCH, 0), "{first:?}");
    assert_exact(&brokers, &output, BATCH);
    // Everything below the binding (here: the whole input) is deleted, as
    // retention would; a pipeline that replays its input could not restart.
    let mut below = TopicPartitionList::new();
    for partition in 0..PARTITIONS as u32 {
        let (_, end) = watermarks(&brokers, &input, partition);
        below.add_partition_offset(&input, partition as i32, Offset::Offset(end as i64)).unwrap();
    }
    futures_executor::block_on(admin(&brokers).delete_records(&below, &AdminOptions::new())).unwrap();
    for partition in 0..PARTITIONS as u32 {
        let (low, high) = watermarks(&brokers, &input, partition);
        assert_eq!(low, high, "partition {partition}: the records were not deleted");
    }
    produce_range(&brokers, &input, PARTITIONS, BATCH..2 * BATCH, now_ms());
    let second = run(&brokers, &input, &output, 3, None).unwrap();
    println!("pipeline_state: second run {second:?}");
    // It read only the new records, and the whole state.
    assert_eq!((second.read, second.restored), (BATCH, KEYS), "{second:?}");
    assert_exact(&brokers, &output, 2 * BATCH);
    // Nothing new: a restart (one worker) writes nothing and reads nothing.
    let third = run(&brokers, &input, &output, 1, None).unwrap();
    assert_eq!((third.read, third.restored, third.written), (0, KEYS, 0), "{third:?}");
    assert_exact(&brokers, &output, 2 * BATCH);
}

#[test]
fn a_missing_or_recreated_changelog_is_refused_naming_the_topic() {
    let Some(brokers) = brokers() else { return };
    let _deadline = common::deadline();
    let (input, output) = topics(&brokers, "missing");
    produce_range(&brokers, &input, PARTITIONS, 0..500, now_ms());
    run(&brokers, &input, &output, 2, None).unwrap();
    let changelog = changelog_topic(&output, STATE);
    futures_executor::block_on(admin(&brokers).delete_topics(&[&changelog], &AdminOptions::new())).unwrap();
    let log = KafkaLog::new(&brokers, &[]).unwrap();
    let gone_by = std::time::Instant::now() + Duration::from_secs(30);
    while log.topic_info(&changelog).unwrap().is_some() {
        assert!(std::time::Instant::now() < gone_by, "'{changelog}' was not deleted within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    produce_range(&brokers, &input, PARTITIONS, 500..600, now_ms());
    let message = run(&brokers, &input, &output, 2, None).unwrap_err().to_string();
    println!("pipeline_state: {message}");
    assert!(message.contains(&format!("changelog topic '{changelog}'")) && message.contains("missing"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert_exact(&brokers, &output, 500);
    assert!(log.topic_info(&changelog).unwrap().is_none(), "the refused start created the changelog again");
    // Created again (empty, same partition count): refused by its topic id.
    log.create_topic(&changelog, PARTITIONS as u32, false).unwrap();
    let message = run(&brokers, &input, &output, 2, None).unwrap_err().to_string();
    println!("pipeline_state: {message}");
    assert!(
        message.contains(&format!("changelog topic '{changelog}'")) && message.contains("created again"),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
    assert_exact(&brokers, &output, 500);
}

#[test]
fn a_corrupt_changelog_is_refused_naming_partition_and_offset() {
    let Some(brokers) = brokers() else { return };
    let _deadline = common::deadline();
    let (input, output) = topics(&brokers, "corrupt");
    produce_range(&brokers, &input, PARTITIONS, 0..500, now_ms());
    run(&brokers, &input, &output, 2, Some(1)).unwrap();
    // A record no pipeline wrote, between two commits' changes.
    let changelog = changelog_topic(&output, STATE);
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    producer.send(BaseRecord::to(&changelog).partition(0).key("xyz").payload("garbage")).map_err(|(e, _)| e).unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    let garbage = watermarks(&brokers, &changelog, 0).1 - 1;
    produce_range(&brokers, &input, PARTITIONS, 500..1000, now_ms());
    // This start restores up to the first commit's end: before the garbage.
    run(&brokers, &input, &output, 2, Some(1)).unwrap();
    assert_exact(&brokers, &output, 1000);
    produce_range(&brokers, &input, PARTITIONS, 1000..1100, now_ms());
    let message = run(&brokers, &input, &output, 2, Some(1)).unwrap_err().to_string();
    println!("pipeline_state: {message}");
    let at = format!("changelog topic '{changelog}' partition 0 offset {garbage}");
    assert!(message.contains(&at) && message.contains("corrupt"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert_exact(&brokers, &output, 1000);
}

#[test]
fn a_declared_state_whose_changes_miss_the_sink_commits_nothing() {
    let Some(brokers) = brokers() else { return };
    let _deadline = common::deadline();
    let (input, output) = topics(&brokers, "unsunk");
    produce_range(&brokers, &input, PARTITIONS, 0..300, now_ms());
    let message = run_with(&brokers, &input, &output, 2, None, false).unwrap_err().to_string();
    println!("pipeline_state: {message}");
    assert!(message.contains("state 'sums' is declared but its changes were not given to the sink"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert!(read_output(&brokers, &output).is_empty(), "something was committed");
    // Given its changes, the same pipeline then writes everything once.
    run(&brokers, &input, &output, 2, None).unwrap();
    assert_exact(&brokers, &output, 300);
}

#[test]
fn a_random_partitioner_is_refused_with_declared_state() {
    let Some(brokers) = brokers() else { return };
    let _deadline = common::deadline();
    let (input, output) = topics(&brokers, "random");
    let error = timely_kafka::execute(timely::Config::thread(), move |w| {
        let log = KafkaLog::new(&brokers, &[("partitioner".into(), "random".into())]).unwrap();
        transactional::open(w, &PipelineConfig::new(log, &input, &output).state(STATE)).map(|_| ())
    })
    .unwrap_err()
    .to_string();
    println!("pipeline_state: {error}");
    assert!(error.contains("'partitioner=random'") && !error.contains('\n'), "{error}");
}

#[test]
fn a_state_in_the_output_restores_from_it_exactly_and_writes_no_changelog() {
    let Some(brokers) = brokers() else { return };
    let _deadline = common::deadline();
    let log = KafkaLog::new(&brokers, &[]).unwrap();
    let input = format!("state-in-output-{}", std::process::id());
    let output = format!("{input}-out");
    log.create_topic(&input, PARTITIONS as u32, false).unwrap();
    transactional::create_state_output(&log, &output, 2).unwrap();
    const BATCH: u64 = 1000;
    produce_range(&brokers, &input, PARTITIONS, 0..BATCH, now_ms());
    let first = run_mode(&brokers, &input, &output, 2, None, true, true).unwrap();
    assert_eq!((first.read, first.restored), (BATCH, 0), "{first:?}");
    assert_exact(&brokers, &output, BATCH);
    produce_range(&brokers, &input, PARTITIONS, BATCH..2 * BATCH, now_ms());
    // Another worker count: the state read back from the output reaches
    // each key's owner; only the new input is read.
    let second = run_mode(&brokers, &input, &output, 3, None, true, true).unwrap();
    println!("pipeline_state: second run {second:?}");
    assert_eq!((second.read, second.restored), (BATCH, KEYS), "{second:?}");
    assert_exact(&brokers, &output, 2 * BATCH);
    let third = run_mode(&brokers, &input, &output, 1, None, true, true).unwrap();
    assert_eq!((third.read, third.restored, third.written), (0, KEYS, 0), "{third:?}");
    assert_exact(&brokers, &output, 2 * BATCH);
    let changelog = changelog_topic(&output, STATE);
    assert!(log.topic_info(&changelog).unwrap().is_none(), "a changelog '{changelog}' was written");
}

#[test]
fn a_state_in_an_output_that_deletes_records_is_refused_naming_it() {
    let Some(brokers) = brokers() else { return };
    let _deadline = common::deadline();
    let log = KafkaLog::new(&brokers, &[]).unwrap();
    let input = format!("state-in-output-delete-{}", std::process::id());
    let output = format!("{input}-out");
    log.create_topic(&input, PARTITIONS as u32, false).unwrap();
    // cleanup.policy=delete with a week's time retention.
    let topic = NewTopic::new(&output, 2, TopicReplication::Fixed(1)).set("retention.ms", "604800000");
    let created = futures_executor::block_on(admin(&brokers).create_topics([&topic], &AdminOptions::new())).unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    produce_range(&brokers, &input, PARTITIONS, 0..100, now_ms());
    let message = run_mode(&brokers, &input, &output, 1, None, true, true).unwrap_err().to_string();
    println!("pipeline_state: {message}");
    assert!(message.contains(&format!("output topic (it keeps state '{STATE}') '{output}'")), "{message}");
    assert!(message.contains("retention.ms=604800000") && message.contains("cleanup.policy=compact"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert!(read_output(&brokers, &output).is_empty(), "a refused start wrote outputs");
}

#[test]
fn a_restart_finds_its_last_commit_behind_another_writers_records() {
    let Some(brokers) = brokers() else { return };
    let _deadline = common::deadline();
    let (input, output) = topics(&brokers, "behind");
    const BATCH: u64 = 500;
    produce_range(&brokers, &input, PARTITIONS, 0..BATCH, now_ms());
    let first = run(&brokers, &input, &output, 2, None).unwrap();
    assert_eq!(first.read, BATCH, "{first:?}");
    // The topics the pipeline created close their segments within an hour,
    // so the broker can compact all but the last hour of changes.
    for topic in [format!("{output}.progress"), changelog_topic(&output, STATE)] {
        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
        let described =
            futures_executor::block_on(admin(&brokers).describe_configs(&[ResourceSpecifier::Topic(&topic)], &options));
        let resource = described.unwrap().pop().unwrap().unwrap();
        let get = |key: &str| resource.get(key).and_then(|entry| entry.value.clone());
        assert_eq!(get("cleanup.policy").as_deref(), Some("compact"), "{topic}");
        assert_eq!(get("segment.ms").as_deref(), Some("3600000"), "{topic}");
        assert_eq!(get("segment.bytes").as_deref(), Some("67108864"), "{topic}");
    }
    // Another writer's records after this pipeline's last commit, more than
    // the windows a start reads first from the end (64, then 256 offsets):
    // the start must look further back, not start over.
    let progress = format!("{output}.progress");
    let (_, before) = watermarks(&brokers, &progress, 0);
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    for i in 0..1000 {
        let payload = format!("not this pipeline's {i}");
        producer.send(BaseRecord::to(&progress).key("another-writer").payload(&payload)).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let (_, after) = watermarks(&brokers, &progress, 0);
    assert_eq!(after - before, 1000, "the other writer's records did not all land");
    produce_range(&brokers, &input, PARTITIONS, BATCH..2 * BATCH, now_ms());
    let second = run(&brokers, &input, &output, 3, None).unwrap();
    // It resumed from its own last commit: only the new records, the whole state.
    assert_eq!((second.read, second.restored), (BATCH, KEYS), "{second:?}");
    assert_exact(&brokers, &output, 2 * BATCH);
}
