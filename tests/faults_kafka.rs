//! Faults injected into librdkafka's mock cluster while capturing and
//! replaying: a capture either completes with a replay equal to its source,
//! or fails loudly within its bound.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{capture_slowly, expected_slowly, replay, replay_partition, Fingerprint};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::{LogBackend, PartitionWriter};

type Cluster = MockCluster<'static, DefaultProducerContext>;

fn cluster(brokers: i32, topic: &str, partitions: i32, properties: &[(&str, &str)]) -> (Cluster, Arc<dyn LogBackend>) {
    let cluster = MockCluster::new(brokers).unwrap();
    cluster.create_topic(topic, partitions, brokers.min(3)).unwrap();
    let properties: Vec<_> = properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let log = KafkaLog::new(&cluster.bootstrap_servers(), &properties).unwrap();
    (cluster, Arc::new(log))
}

const ROUNDS: u64 = 40;
const BATCH: u64 = 2_000;
const PAUSE: Duration = Duration::from_millis(50);

/// Runs a slow two-worker capture, calls `fault` once it is under way, and
/// checks that it completes and replays equal to its source.
fn survives(brokers: i32, fault: impl FnOnce(&Cluster)) {
    survives_with(brokers, &[], fault)
}

fn survives_with(brokers: i32, properties: &[(&str, &str)], fault: impl FnOnce(&Cluster)) {
    let (cluster, log) = cluster(brokers, "t", 2, properties);
    let (handles, guards) = capture_slowly(log.clone(), "t", 2, ROUNDS, BATCH, PAUSE);
    std::thread::sleep(Duration::from_millis(300));
    fault(&cluster);
    for result in guards.join() {
        result.expect("capture worker failed");
    }
    for handle in handles.lock().unwrap().iter() {
        handle.outcome().expect("capture completed");
    }
    assert_eq!(replay(log, "t", 3), expected_slowly(2, ROUNDS, BATCH));
}

#[test]
fn broker_down_for_seconds_mid_capture() {
    let _deadline = common::deadline();
    survives(1, |cluster| {
        cluster.broker_down(1).unwrap();
        std::thread::sleep(Duration::from_secs(3));
        cluster.broker_up(1).unwrap();
    });
}

#[test]
fn transient_produce_errors() {
    let _deadline = common::deadline();
    // One request in flight: the mock checks idempotent sequence numbers only
    // for transactional producers (rdkafka_mock.c), so with several requests
    // in flight it appends batches that follow a timed-out one, and librdkafka
    // then infers that the timed-out batch was stored when it was not. A real
    // broker refuses such batches as out of order. The writer's growth check
    // turns that loss into an error (see the test below); here we want the
    // retry path itself to be exercised and to succeed.
    survives_with(1, &[("max.in.flight.requests.per.connection", "1")], |cluster| {
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            ],
        );
    });
}

#[test]
fn leader_moves_mid_capture() {
    let _deadline = common::deadline();
    survives(3, |cluster| {
        cluster.partition_leader("t", 0, Some(2)).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        cluster.partition_leader("t", 1, Some(3)).unwrap();
    });
}

#[test]
fn slow_broker_round_trips() {
    let _deadline = common::deadline();
    survives(1, |cluster| {
        cluster.broker_round_trip_time(1, Duration::from_millis(300)).unwrap();
    });
}

#[test]
fn broker_down_past_the_delivery_timeout_fails_loudly_in_bounded_time() {
    let _deadline = common::deadline();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 1, 1).unwrap();
    let properties = [("message.timeout.ms".to_string(), "2000".to_string())];
    let log = KafkaLog::unchecked(&cluster.bootstrap_servers(), &properties)
        .unwrap()
        .with_timeout(Duration::from_secs(5))
        .checked()
        .unwrap();
    let log: Arc<dyn LogBackend> = Arc::new(log);
    let started = Instant::now();
    let (handles, guards) = capture_slowly(log, "t", 1, ROUNDS, BATCH, PAUSE);
    std::thread::sleep(Duration::from_millis(300));
    cluster.broker_down(1).unwrap();
    // The failed producer stops writing and the capture runs to its end.
    for result in guards.join() {
        result.expect("a failed capture does not panic its worker");
    }
    let error = handles.lock().unwrap()[0].error().expect("the error is recorded").to_string();
    assert!(error.contains("topic 't' partition 0"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}

#[test]
fn duplicates_are_skipped_and_gaps_are_errors() {
    let _deadline = common::deadline();
    let (_cluster, log) = cluster(1, "src", 1, &[]);
    common::capture(log.clone(), "src", 1, 50_000);
    // The mock cannot create topics through the admin API: pre-create them.
    let (cluster2, log2) = cluster(1, "dup", 1, &[]);
    cluster2.create_topic("gap", 1, 1).unwrap();
    let (fp, _, error) = replay_partition(log.as_ref(), "src");
    assert_eq!(error, None);
    // Copy through a raw writer: every 7th record twice...
    let mut source = Vec::new();
    let mut reader = log.reader("src", 0, 0).unwrap();
    while let Some(record) = reader.poll(Duration::from_secs(2)).unwrap() {
        source.push(record.payload.to_vec());
    }
    let mut writer = log2.writer("dup", 0).unwrap();
    for (i, record) in source.iter().enumerate() {
        writer.append(record).unwrap();
        if i % 7 == 3 {
            writer.append(record).unwrap();
        }
    }
    writer.flush().unwrap();
    let (dup_fp, stats, error) = replay_partition(log2.as_ref(), "dup");
    assert_eq!(error, None);
    assert_eq!(dup_fp, fp);
    assert_eq!(dup_fp, Fingerprint::expected(1, 50_000));
    assert!(stats.duplicates > 0);
    // ... and one record removed.
    let mut writer = log2.writer("gap", 0).unwrap();
    for (i, record) in source.iter().enumerate() {
        if i != 5 {
            writer.append(record).unwrap();
        }
    }
    writer.flush().unwrap();
    let (_, _, error) = replay_partition(log2.as_ref(), "gap");
    let error = error.expect("a gap is an error");
    assert!(error.contains("gap") && error.contains("topic 'gap' partition 0 offset 5"), "{error}");
}

#[test]
fn stream_start_deleted_by_retention_is_reported() {
    let _deadline = common::deadline();
    // 1.5 million u64 = 12 MB: the mock keeps only the newest 5 MiB.
    let (_cluster, log) = cluster(1, "long", 1, &[]);
    common::capture(log.clone(), "long", 1, 1_500_000);
    let (_, _, error) = replay_partition(log.as_ref(), "long");
    let error = error.expect("replay must refuse a stream without its start");
    assert!(error.contains("topic 'long' partition 0"), "{error}");
    assert!(error.contains("first available offset"), "{error}");
}

#[test]
fn foreign_records_are_refused() {
    let _deadline = common::deadline();
    let (_cluster, log) = cluster(1, "foreign", 1, &[]);
    let mut writer = log.writer("foreign", 0).unwrap();
    writer.append(b"temperature=21.5").unwrap();
    writer.flush().unwrap();
    let (_, _, error) = replay_partition(log.as_ref(), "foreign");
    let error = error.expect("foreign records are an error");
    assert!(error.contains("topic 'foreign' partition 0 offset 0"), "{error}");
}

#[test]
fn a_second_writer_interleaving_on_the_partition_fails_the_flush() {
    let _deadline = common::deadline();
    let (_cluster, log) = cluster(1, "shared", 1, &[]);
    let mut first = log.writer("shared", 0).unwrap();
    let mut second = log.writer("shared", 0).unwrap();
    first.append(b"one").unwrap();
    first.flush().expect("offset 0: exactly the one record sent");
    second.append(b"two").unwrap();
    second.flush().expect("offset 1: this writer cannot know it is not alone yet");
    first.append(b"three").unwrap();
    let error = first.flush().expect_err("offsets 0 and 2 are not contiguous").to_string();
    assert!(error.contains("topic 'shared' partition 0"), "{error}");
    assert!(error.contains("acknowledged 1 records (1 with an offset, spanning 2..=2)"), "{error}");
    assert!(error.contains("2 records from offset 1 on") && error.contains("another writer"), "{error}");
}
