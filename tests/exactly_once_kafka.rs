//! Exactly-once capture over Kafka, on librdkafka's mock cluster (which has
//! no transaction semantics: the guarantee comes from the stream protocol):
//! crashes and resumes, a zombie writing after the resume, broker faults.
//! With `KAFKA_BROKERS` set (CI starts tansu), the same against that broker.

mod common;
mod eo;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use timely::dataflow::operators::capture::{Event, EventPusher};
use timely::dataflow::operators::Capture;
use timely_kafka::error::TopicPartition;
use timely_kafka::inspect::{record_frame, RecordKind};
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;
use timely_kafka::log::{BackendHooks, PartitionWriter, WriterHooks};
use timely_kafka::{EventProducer, Result};
use timely_kafka_cli::numbers::{timed_numbers, Numbers};

type Cluster = MockCluster<'static, DefaultProducerContext>;

fn mock(topics: &[&str]) -> (Cluster, Arc<dyn LogBackend>) {
    mock_with(topics, 2)
}

fn mock_with(topics: &[&str], partitions: i32) -> (Cluster, Arc<dyn LogBackend>) {
    let cluster = MockCluster::new(1).unwrap();
    for topic in topics {
        cluster.create_topic(topic, partitions, 1).unwrap();
    }
    let log = KafkaLog::new(&cluster.bootstrap_servers(), &[]).unwrap();
    (cluster, Arc::new(log))
}

/// The broker CI started, if any.
fn broker() -> Option<Arc<dyn LogBackend>> {
    let brokers = std::env::var("KAFKA_BROKERS").ok().filter(|b| !b.is_empty())?;
    Some(Arc::new(KafkaLog::new(&brokers, &[]).unwrap()))
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{nanos}")
}

/// Crash points across the stream, including before the first commit.
const CRASHES: [(u64, u64); 5] = [(0, 7), (3, 150), (40, 41), (120, 2), (260, 90)];

fn crash_and_resume(log: Arc<dyn LogBackend>, topics: &[String]) {
    let spec = eo::spec(4_000, 29);
    for (round, (topic, (a, b))) in topics.iter().zip(CRASHES).enumerate() {
        eo::capture_crashing(log.clone(), topic, spec, vec![Some(a), Some(b)]);
        let points = eo::resume_capture(log.clone(), topic, spec, 2).unwrap();
        assert_eq!(points.len(), 2);
        let workers = 1 + round % 3;
        let expected = eo::expected(spec, 2);
        assert_eq!(eo::replay(log.clone(), topic, 2, workers), expected, "{topic}, {workers} workers");
        assert_eq!(eo::replay_with_window(log.clone(), topic, 2, workers, 0), expected, "{topic}, re-read");
    }
}

#[test]
fn crashes_then_resume_replay_exactly_on_the_mock_cluster() {
    let _deadline = common::deadline();
    let topics: Vec<String> = (0..CRASHES.len()).map(|i| format!("t{i}")).collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let (_cluster, log) = mock(&names);
    crash_and_resume(log, &topics);
}

#[test]
fn crashes_then_resume_replay_exactly_on_a_real_broker() {
    let _deadline = common::deadline();
    let Some(log) = broker() else {
        eprintln!("KAFKA_BROKERS not set: skipping (CI runs this against tansu)");
        return;
    };
    let topics: Vec<String> = (0..CRASHES.len()).map(|_| unique("eo")).collect();
    crash_and_resume(log, &topics);
}

/// A capture that "died" is resumed and completes; then the dead capture's
/// unsent records (data and commits, as a paused process would send them
/// when woken) land after the resumed epoch. Replay ignores them.
fn zombie(log: Arc<dyn LogBackend>, topic: &str) {
    let spec = eo::spec(4_000, 29);
    let held = Arc::new(Mutex::new(Vec::new()));
    let guards = eo::start_capture(log.clone(), topic, spec, vec![Some(90), Some(60)], held.clone());
    guards.join().unwrap().into_iter().for_each(|r| r.unwrap());
    eo::resume_capture(log.clone(), topic, spec, 2).unwrap();
    let before = eo::replay(log.clone(), topic, 2, 2);
    assert_eq!(before, eo::expected(spec, 2));
    let written = eo::release_zombies(log.as_ref(), topic, &held);
    assert!(written > 100, "the zombie wrote {written} records");
    for workers in [1, 3] {
        assert_eq!(eo::replay(log.clone(), topic, 2, workers), eo::expected(spec, 2), "{workers} workers");
    }
    assert_eq!(eo::replay_with_window(log.clone(), topic, 2, 2, 0), eo::expected(spec, 2), "re-read");
}

#[test]
fn a_zombie_writing_after_the_resume_is_ignored_on_the_mock_cluster() {
    let _deadline = common::deadline();
    let (_cluster, log) = mock(&["z"]);
    zombie(log, "z");
}

#[test]
fn a_zombie_writing_after_the_resume_is_ignored_on_a_real_broker() {
    let _deadline = common::deadline();
    let Some(log) = broker() else {
        eprintln!("KAFKA_BROKERS not set: skipping (CI runs this against tansu)");
        return;
    };
    zombie(log, &unique("zombie"));
}

/// An exactly-once capture at a limited rate, with `fault` injected while
/// it runs: it completes and replays exactly, or it fails loudly (and a
/// resume then completes it).
fn survives(fault: impl FnOnce(&Cluster)) {
    let (cluster, log) = mock(&["f"]);
    let spec = Numbers { rate: Some(8_000), ..eo::spec(16_000, 50) };
    let held = Arc::new(Mutex::new(Vec::new()));
    let guards = eo::start_capture(log.clone(), "f", spec, vec![None, None], held);
    std::thread::sleep(Duration::from_millis(400));
    fault(&cluster);
    let failed: Vec<String> = guards.join().unwrap().into_iter().filter_map(|r| r.err()).collect();
    if !failed.is_empty() {
        eprintln!("capture failed loudly ({failed:?}); resuming");
        let points = eo::resume_capture(log.clone(), "f", Numbers { rate: None, ..spec }, 2).unwrap();
        // A writer that failed wrote no commit past its failure: never a
        // failed capture with every stream complete.
        assert!(!points.is_empty(), "the capture failed ({failed:?}) but every stream is complete");
    }
    assert_eq!(eo::replay(log, "f", 2, 3), eo::expected(spec, 2));
}

#[test]
fn broker_down_for_seconds_during_an_exactly_once_capture() {
    let _deadline = common::deadline();
    survives(|cluster| {
        cluster.broker_down(1).unwrap();
        std::thread::sleep(Duration::from_secs(3));
        cluster.broker_up(1).unwrap();
    });
}

/// Timed-out produce requests: librdkafka retries, and the mock cluster
/// (which checks idempotent sequence numbers only for transactional
/// producers) may acknowledge a batch it never stored; the writer must then
/// fail at its next commit, leaving an incomplete stream a resume completes.
#[test]
fn request_timeouts_during_an_exactly_once_capture() {
    let _deadline = common::deadline();
    survives(|cluster| {
        let timeouts = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 3];
        cluster.request_errors(RDKafkaApiKey::Produce, &timeouts);
    });
}

#[test]
fn request_errors_during_an_exactly_once_capture() {
    let _deadline = common::deadline();
    survives(|cluster| {
        let errors = [
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        ];
        cluster.request_errors(RDKafkaApiKey::Produce, &errors);
        cluster.request_errors(RDKafkaApiKey::Fetch, &errors);
    });
}

/// The exchange-before-capture resume of `exactly_once_file.rs` on Kafka.
fn exchange(log: Arc<dyn LogBackend>, topics: [&str; 2]) {
    let crashes = [vec![Some(40), Some(300), None], vec![Some(220), Some(0), Some(90)]];
    for (topic, crash_after) in topics.into_iter().zip(crashes) {
        eo::exchange_crash_and_resume(log.clone(), topic, crash_after);
    }
}

#[test]
fn a_resume_after_an_exchange_before_the_capture_replays_exactly_on_the_mock_cluster() {
    let _deadline = common::deadline();
    let (_cluster, log) = mock_with(&["x0", "x1"], 3);
    exchange(log, ["x0", "x1"]);
}

#[test]
fn a_resume_after_an_exchange_before_the_capture_replays_exactly_on_a_real_broker() {
    let _deadline = common::deadline();
    let Some(log) = broker() else {
        eprintln!("KAFKA_BROKERS not set: skipping");
        return;
    };
    let topics = [unique("exchange"), unique("exchange")];
    exchange(log, [topics[0].as_str(), topics[1].as_str()]);
}

/// Lets another writer append a record (of another session) to the
/// partition just before its `at`-th record (`None`: before its final
/// commit): a foreign record among the writer's own, which leaves its
/// acknowledged offsets non-contiguous.
struct Interleaved {
    inner: Box<dyn PartitionWriter>,
    other: Box<dyn PartitionWriter>,
    at: Option<u64>,
    appended: u64,
    inserted: Arc<AtomicU64>,
}

fn is_final_commit(record: &[u8]) -> bool {
    record_frame(record).is_ok_and(|frame| frame.kind == RecordKind::Commit && frame.is_final)
}

/// An event frame of another capture session: a one-event capture's
/// records, kept instead of written.
fn foreign_event_frame() -> Vec<u8> {
    struct Recorder(TopicPartition, Arc<Mutex<Vec<Vec<u8>>>>);
    impl PartitionWriter for Recorder {
        fn partition(&self) -> &TopicPartition {
            &self.0
        }
        fn append(&mut self, record: &[u8]) -> Result<()> {
            self.1.lock().unwrap().push(record.to_vec());
            Ok(())
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
    }
    impl WriterHooks for Recorder {}
    let records = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder(TopicPartition::new("foreign", 0), records.clone());
    let mut producer = EventProducer::<u64, Vec<u64>, _>::new(recorder, 0, 1).unwrap();
    producer.push(Event::Messages(timely::progress::Stamp::from_elem(0), vec![7]));
    drop(producer);
    let records = records.lock().unwrap();
    let event = records.iter().find(|record| record_frame(record).is_ok_and(|frame| frame.kind == RecordKind::Event));
    event.expect("a capture of one event writes an event frame").clone()
}

impl PartitionWriter for Interleaved {
    fn partition(&self) -> &TopicPartition {
        self.inner.partition()
    }
    fn append(&mut self, record: &[u8]) -> Result<()> {
        let here = match self.at {
            Some(at) => self.appended == at,
            None => is_final_commit(record),
        };
        if here {
            self.inserted.fetch_add(1, Ordering::Relaxed);
            self.other.append(&foreign_event_frame())?;
            self.other.flush()?;
        }
        self.appended += 1;
        self.inner.append(record)
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
    fn publish(&mut self) -> Result<()> {
        self.inner.publish()
    }
    fn max_record_bytes(&self) -> usize {
        self.inner.max_record_bytes()
    }
}

impl WriterHooks for Interleaved {
    fn check_stored(&mut self) -> Result<()> {
        self.inner.check_stored()
    }
}

/// A writer whose records are no longer contiguous (here another writer's
/// record among them; a record the broker skipped is caught by the same
/// check) fails at its next commit: no commit vouches for a stretch that
/// holds a hole or a foreign record, the stream stays incomplete, and a
/// resume continues from the last commit before it.
fn foreign_record(log: Arc<dyn LogBackend>, topic: &str) {
    const FOREIGN_AT: u64 = 60;
    log.create_topic(topic, 1, true).unwrap();
    let spec = Numbers { rate: Some(40_000), ..eo::spec(4_000, 29) };
    let capture_log = log.clone();
    let name = topic.to_string();
    let errors = timely::execute(timely::Config::thread(), move |worker| {
        let inner = capture_log.writer(&name, 0).unwrap();
        let other = capture_log.writer(&name, 0).unwrap();
        let inserted = Arc::default();
        let writer = Interleaved { inner, other, at: Some(FOREIGN_AT), appended: 0, inserted };
        let producer = EventProducer::<u64, Vec<u64>, _>::exactly_once(writer, 0, 1, eo::eager()).unwrap();
        let handle = producer.status();
        worker.dataflow::<u64, _, _>(|scope| timed_numbers(scope, spec).capture_into(producer));
        while worker.step() {}
        (handle.error(), handle.stats().commits)
    })
    .unwrap()
    .join();
    let (error, commits) = errors.into_iter().next().unwrap().unwrap();
    let error = error.expect("the writer notices the foreign record").to_string();
    assert!(error.contains("another writer shares the partition"), "{error}");
    let points = eo::resume_capture(log.clone(), topic, Numbers { rate: None, ..spec }, 1).unwrap();
    assert_eq!(points.len(), 1, "the stream must stay incomplete ({commits} commits written)");
    let continued = points[0].commit_offset;
    assert!(continued.is_none_or(|offset| offset < FOREIGN_AT), "continues commit at {continued:?}");
    assert_eq!(eo::replay(log, topic, 1, 1), eo::expected(spec, 1));
}

#[test]
fn a_writer_fails_at_its_next_commit_once_its_offsets_are_not_contiguous() {
    let _deadline = common::deadline();
    let (_cluster, log) = mock_with(&["i"], 1);
    foreign_record(log, "i");
}

#[test]
fn a_writer_fails_at_its_next_commit_once_its_offsets_are_not_contiguous_on_a_real_broker() {
    let _deadline = common::deadline();
    let Some(log) = broker() else {
        eprintln!("KAFKA_BROKERS not set: skipping");
        return;
    };
    foreign_record(log, &unique("foreign"));
}

/// A log whose writers let another writer's record in just before their
/// final commit: the resumed capture's last checked commit passed, and its
/// final flush finds its offsets non-contiguous.
struct ForeignBeforeFinalCommit {
    inner: Arc<dyn LogBackend>,
    inserted: Arc<AtomicU64>,
}

impl BackendHooks for ForeignBeforeFinalCommit {}

impl LogBackend for ForeignBeforeFinalCommit {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn topic_info(&self, topic: &str) -> Result<Option<timely_kafka::log::TopicInfo>> {
        self.inner.topic_info(topic)
    }
    fn create_topic(&self, topic: &str, partitions: u32, overwrite: bool) -> Result<()> {
        self.inner.create_topic(topic, partitions, overwrite)
    }
    fn writer(&self, topic: &str, partition: u32) -> Result<Box<dyn PartitionWriter>> {
        let (inner, other) = (self.inner.writer(topic, partition)?, self.inner.writer(topic, partition)?);
        Ok(Box::new(Interleaved { inner, other, at: None, appended: 0, inserted: self.inserted.clone() }))
    }
    fn reader(&self, topic: &str, partition: u32, offset: u64) -> Result<Box<dyn timely_kafka::log::PartitionReader>> {
        self.inner.reader(topic, partition, offset)
    }
}

/// A resumed capture whose final flush meets another writer's record just
/// before its final commit (an old capture still writing) reads its stream
/// back: it is complete with the resume's final commit, and replay ignores
/// the foreign record, so the resume succeeds instead of exiting 1 with a
/// complete stream (which a further resume would only call complete).
#[test]
fn a_foreign_record_before_the_final_commit_does_not_fail_a_complete_resume() {
    let _deadline = common::deadline();
    let (_cluster, log) = mock_with(&["y"], 2);
    let spec = eo::spec(4_000, 29);
    eo::capture_crashing(log.clone(), "y", spec, vec![Some(60), Some(90)]);
    let inserted = Arc::new(AtomicU64::new(0));
    let interleaving: Arc<dyn LogBackend> =
        Arc::new(ForeignBeforeFinalCommit { inner: log.clone(), inserted: inserted.clone() });
    let points = eo::resume_capture(interleaving, "y", spec, 2).unwrap();
    assert_eq!(points.len(), 2);
    let resumed = points.iter().filter(|p| !p.committed.is_empty()).count();
    assert!(resumed >= 1, "{points:?}");
    assert_eq!(inserted.load(Ordering::Relaxed), resumed as u64, "a foreign record before each final commit");
    assert_eq!(eo::resume_capture(log.clone(), "y", spec, 2).unwrap().len(), 0, "every stream is complete");
    for workers in [1, 2] {
        assert_eq!(eo::replay(log.clone(), "y", 2, workers), eo::expected(spec, 2), "{workers} workers");
    }
}
