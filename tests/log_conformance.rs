//! One contract, every backend: the same checks run on the file log and on
//! Kafka, so a program written against `LogBackend` behaves alike on both.
//!
//! Covered: `create_topic` (create, keep, refuse, overwrite), append and
//! read back, reading from an offset, tailing a partition while it grows,
//! and end offsets. Each partition gets its own data, so a record read from
//! the wrong partition or offset shows.
//!
//! A third backend runs it too: `memory_log`, an in-memory log written from
//! `src/log/mod.rs` alone.
//!
//! Kafka runs twice: on librdkafka's mock cluster (in process, always),
//! which has no CreateTopics or DeleteTopics, so there the topics are made
//! by the mock and `create_topic` is checked only where it must leave an
//! existing topic alone; and on a real broker when `KAFKA_BROKERS` is set
//! (`.ci/run` runs it against tansu), where every check runs.

mod memory_log;

use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use timely_kafka::log::LogBackend;
use timely_kafka::log::{PartitionReader, TopicInfo};
use timely_kafka::{Error, FileLog, KafkaLog};

/// Long enough for the mock's first fetch; polls return as soon as a record is in.
const POLL: Duration = Duration::from_secs(10);

/// The record at `offset` of `partition`: different on every partition.
fn record(partition: u32, offset: u64) -> Vec<u8> {
    format!("partition {partition} record {offset}").into_bytes()
}

fn info(log: &dyn LogBackend, topic: &str) -> TopicInfo {
    log.topic_info(topic).unwrap().unwrap_or_else(|| panic!("{}: topic '{topic}' missing", log.name()))
}

fn append(log: &dyn LogBackend, topic: &str, partition: u32, offsets: std::ops::Range<u64>) {
    let mut writer = log.writer(topic, partition).unwrap();
    for offset in offsets {
        writer.append(&record(partition, offset)).unwrap();
    }
    writer.flush().unwrap();
}

/// Reads `count` records from `reader`, checking each one's offset and bytes.
fn expect_records(reader: &mut dyn PartitionReader, partition: u32, from: u64, count: u64, backend: &str) {
    for offset in from..from + count {
        let got = reader.poll(POLL).unwrap().unwrap_or_else(|| panic!("{backend}: no record at {offset}"));
        assert_eq!(got.offset, offset, "{backend}: partition {partition}");
        assert_eq!(got.payload, &record(partition, offset)[..], "{backend}: offset {offset}");
    }
}

/// Makes a topic of some partitions outside the backend.
type MakeTopic<'a> = &'a dyn Fn(&str, u32);

/// A backend under test, and how its topics are made.
struct Backend<'a> {
    log: &'a dyn LogBackend,
    /// Makes a new topic; `None`: `create_topic` itself (the backend has an admin API).
    make: Option<MakeTopic<'a>>,
    /// Topic names get this prefix (a real broker outlives the test).
    prefix: String,
}

impl Backend<'_> {
    fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A new empty topic of `partitions` partitions.
    fn new_topic(&self, name: &str, partitions: u32) -> String {
        let topic = self.topic(name);
        match self.make {
            Some(make) => make(&topic, partitions),
            None => self.log.create_topic(&topic, partitions, false).unwrap(),
        }
        wait_for(self.log, &topic, partitions);
        topic
    }
}

/// Waits (bounded) until the backend's metadata shows the topic with `partitions`.
fn wait_for(log: &dyn LogBackend, topic: &str, partitions: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.topic_info(topic).unwrap().map(|i| i.partitions) != Some(partitions) {
        assert!(Instant::now() < deadline, "{}: '{topic}' never showed {partitions} partitions", log.name());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create_keeps_refuses_and_overwrites(backend: &Backend<'_>) {
    let log = backend.log;
    let name = log.name();
    let c = backend.topic("c");
    assert!(log.topic_info(&c).unwrap().is_none(), "{name}: a topic nobody created");
    assert!(log.create_topic(&c, 0, false).is_err(), "{name}: zero partitions accepted");

    let c = backend.new_topic("c", 3);
    assert_eq!(info(log, &c), TopicInfo { partitions: 3, has_data: false }, "{name}: created");

    // Empty and large enough: kept as it is, never shrunk.
    log.create_topic(&c, 2, false).unwrap();
    assert_eq!(info(log, &c).partitions, 3, "{name}: an empty topic was resized");
    // Empty but too small: refused, never grown.
    match log.create_topic(&c, 5, false) {
        Err(Error::TooFewPartitions { actual: 3, wanted: 5, .. }) => {}
        other => panic!("{name}: growing an empty topic without overwrite gave {other:?}"),
    }
    assert_eq!(info(log, &c).partitions, 3, "{name}: a refused create changed the topic");

    append(log, &c, 1, 0..4);
    assert!(info(log, &c).has_data, "{name}: has_data after an append");
    match log.create_topic(&c, 3, false) {
        Err(Error::TopicNotEmpty(topic)) => assert_eq!(topic, c),
        other => panic!("{name}: a topic holding data without overwrite gave {other:?}"),
    }
    assert_eq!(log.reader(&c, 1, 0).unwrap().end_offset().unwrap(), 4, "{name}: a refused create lost records");

    if backend.make.is_some() {
        return; // No admin API: overwriting is deleting and creating.
    }
    // Overwrite: made anew with exactly the partitions asked for, empty.
    log.create_topic(&c, 2, true).unwrap();
    wait_for(log, &c, 2);
    assert_eq!(info(log, &c), TopicInfo { partitions: 2, has_data: false }, "{name}: overwritten smaller");
    assert_eq!(log.reader(&c, 1, 0).unwrap().end_offset().unwrap(), 0, "{name}: old records survived");
    log.create_topic(&c, 4, true).unwrap();
    wait_for(log, &c, 4);
    assert_eq!(info(log, &c), TopicInfo { partitions: 4, has_data: false }, "{name}: overwritten larger");
}

fn append_read_and_end_offsets(backend: &Backend<'_>) {
    let (log, name) = (backend.log, backend.log.name());
    let r = backend.new_topic("r", 2);
    let r = r.as_str();
    assert_eq!(log.reader(r, 0, 0).unwrap().end_offset().unwrap(), 0, "{name}: end of an empty partition");
    append(log, r, 0, 0..5);
    append(log, r, 1, 0..7);
    for (partition, count) in [(0u32, 5u64), (1, 7)] {
        let mut reader = log.reader(r, partition, 0).unwrap();
        assert_eq!(reader.end_offset().unwrap(), count, "{name}: end offset of partition {partition}");
        expect_records(reader.as_mut(), partition, 0, count, name);
        // From an offset, and after a seek back.
        let mut reader = log.reader(r, partition, 3).unwrap();
        expect_records(reader.as_mut(), partition, 3, count - 3, name);
        reader.seek(1).unwrap();
        expect_records(reader.as_mut(), partition, 1, 1, name);
    }
    // A second writer appends after what is stored.
    append(log, r, 0, 5..8);
    let mut reader = log.reader(r, 0, 0).unwrap();
    assert_eq!(reader.end_offset().unwrap(), 8, "{name}: end offset after a second writer");
    expect_records(reader.as_mut(), 0, 0, 8, name);
}

fn tail_follows_appends(backend: &Backend<'_>) {
    let (log, name) = (backend.log, backend.log.name());
    let f = backend.new_topic("f", 1);
    let f = f.as_str();
    append(log, f, 0, 0..2);
    let mut reader = log.reader(f, 0, 0).unwrap();
    expect_records(reader.as_mut(), 0, 0, 2, name);
    // At the end: nothing, without an error, within the poll's bound.
    assert!(reader.poll(Duration::from_millis(200)).unwrap().is_none(), "{name}: a record past the end");
    // Appends made while the reader waits at the end reach it.
    append(log, f, 0, 2..5);
    expect_records(reader.as_mut(), 0, 2, 3, name);
    assert_eq!(reader.end_offset().unwrap(), 5, "{name}: end offset while tailing");
}

fn conformance(backend: &Backend<'_>) {
    create_keeps_refuses_and_overwrites(backend);
    append_read_and_end_offsets(backend);
    tail_follows_appends(backend);
}

#[test]
fn file_log_keeps_the_log_contract() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::new(dir.path());
    conformance(&Backend { log: &log, make: None, prefix: String::new() });
}

#[test]
fn a_memory_log_written_from_the_traits_alone_keeps_the_log_contract() {
    let log = memory_log::MemoryLog::default();
    conformance(&Backend { log: &log, make: None, prefix: String::new() });
}

#[test]
fn kafka_mock_keeps_the_log_contract() {
    let cluster: MockCluster<'static, DefaultProducerContext> = MockCluster::new(1).unwrap();
    let log = KafkaLog::new(&cluster.bootstrap_servers(), &[]).unwrap();
    let make = |topic: &str, partitions: u32| cluster.create_topic(topic, partitions as i32, 1).unwrap();
    conformance(&Backend { log: &log, make: Some(&make), prefix: String::new() });
}

#[test]
fn kafka_broker_keeps_the_log_contract() {
    let Some(brokers) = std::env::var("KAFKA_BROKERS").ok().filter(|b| !b.is_empty()) else {
        eprintln!("skipped: KAFKA_BROKERS is not set (run scripts/broker.sh start, then KAFKA_BROKERS=127.0.0.1:9092)");
        return;
    };
    let log = KafkaLog::new(&brokers, &[]).unwrap();
    let unique = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    conformance(&Backend { log: &log, make: None, prefix: format!("conformance-{unique}-") });
}
