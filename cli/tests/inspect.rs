//! `capture_inspect` and its library module on the file log and the mock
//! cluster: complete streams, a foreign record, an incomplete session, and
//! a topic captured twice.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use timely::dataflow::operators::capture::event::{Event, EventPusher};
use timely::progress::Stamp;
use timely_kafka::inspect::{inspect_topic, Frontier, PartitionSummary};
use timely_kafka::log::file::FileLog;
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::{LogBackend, PartitionWriter};
use timely_kafka::EventProducer;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Partition 0: a complete capture of 1000 numbers. Partition 1: a foreign
/// record, then a session stopped at frontier [9] (3 events, no final one).
fn fill(log: &dyn LogBackend, topic: &str) {
    let mut producer = EventProducer::<u64, Vec<u64>>::new(log.writer(topic, 0).unwrap(), 0, 2).unwrap();
    producer.push(Event::Messages(Stamp::from_elem(0), (0..1000).collect()));
    producer.push(Event::Progress(vec![(0, -1)]));
    producer.finish().unwrap();

    let mut writer = log.writer(topic, 1).unwrap();
    writer.append(b"temperature=21.5").unwrap();
    writer.flush().unwrap();
    drop(writer);
    let mut producer = EventProducer::<u64, Vec<u64>>::new(log.writer(topic, 1).unwrap(), 1, 2).unwrap();
    producer.push(Event::Messages(Stamp::from_elem(0), vec![1, 2, 3]));
    producer.push(Event::Progress(vec![(0, -1), (5, 1)]));
    producer.push(Event::Progress(vec![(5, -1), (9, 1)]));
    producer.finish().unwrap();
}

fn check(summaries: &[PartitionSummary]) {
    assert_eq!(summaries.len(), 2);
    let complete = &summaries[0];
    assert_eq!(
        complete.to_string(),
        "partition=0 sessions=1 events=2 first_offset=0 last_offset=2 complete=true frontier=[] foreign=0 corrupt=0 exactly_once=false"
    );
    let cut = &summaries[1];
    assert_eq!((cut.sessions, cut.events, cut.foreign, cut.complete), (1, 3, 1, false), "{cut}");
    assert_eq!((cut.first_offset, cut.last_offset), (Some(0), Some(4)), "{cut}");
    assert_eq!(cut.frontier, Frontier::Known("[9]".into()), "{cut}");
}

#[test]
fn file_log_partitions_are_summarised() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::new(dir.path());
    log.create_topic("mixed", 2, false).unwrap();
    fill(&log, "mixed");
    check(&inspect_topic(&log, "mixed", TIMEOUT).unwrap());
}

#[test]
fn mock_cluster_partitions_are_summarised() {
    let _deadline = common::deadline();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("mixed", 2, 1).unwrap();
    let log = KafkaLog::new(&cluster.bootstrap_servers(), &[]).unwrap();
    fill(&log, "mixed");
    check(&inspect_topic(&log, "mixed", TIMEOUT).unwrap());
}

#[test]
fn a_stream_over_many_timestamps_is_complete() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn LogBackend> = Arc::new(FileLog::new(dir.path()));
    common::many_timestamps(log.clone(), "times");
    let summaries = inspect_topic(log.as_ref(), "times", TIMEOUT).unwrap();
    assert_eq!(summaries.len(), 3);
    for summary in &summaries {
        assert!(summary.complete && summary.sessions == 1 && summary.foreign == 0, "{summary}");
        assert_eq!(summary.frontier, Frontier::Known("[]".into()), "{summary}");
        assert!(summary.events >= 100, "records at 100 times: {summary}");
    }
}

#[test]
fn an_unknown_timestamp_type_is_named() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::new(dir.path());
    log.create_topic("pairs", 1, false).unwrap();
    type Time = (u64, u32);
    let mut producer = EventProducer::<Time, Vec<u8>>::new(log.writer("pairs", 0).unwrap(), 0, 1).unwrap();
    producer.push(Event::Messages(Stamp::from_elem((1, 2)), vec![1]));
    producer.finish().unwrap();
    let summary = &inspect_topic(&log, "pairs", TIMEOUT).unwrap()[0];
    assert_eq!(summary.frontier.to_string(), "unknown((u64, u32))");
    assert_eq!((summary.events, summary.complete), (1, false));
}

#[test]
fn the_binary_prints_one_line_per_partition() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let send = Command::new(env!("CARGO_BIN_EXE_capture_send"))
        .args(["n", "5000", "-w3", "--data-dir"])
        .arg(dir.path())
        .env_remove("KAFKA_BROKERS")
        .output()
        .unwrap();
    assert!(send.status.success(), "{}", String::from_utf8_lossy(&send.stderr));
    let inspect = |topic: &str| {
        Command::new(env!("CARGO_BIN_EXE_capture_inspect"))
            .args([topic, "--data-dir"])
            .arg(dir.path())
            .env_remove("KAFKA_BROKERS")
            .output()
            .unwrap()
    };
    let output = inspect("n");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (p, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("partition={p} sessions=1 events=")), "{line}");
        assert!(line.contains("complete=true frontier=[] foreign=0 corrupt=0 exactly_once=false"), "{line}");
        let field = |key: &str| line.split(' ').find_map(|kv| kv.strip_prefix(key)).unwrap().parse::<u64>().unwrap();
        assert_eq!(field("end_offset="), field("last_offset=") + 1, "{line}");
    }
    // A consumer's position: its lag; --json: one object per partition.
    let output = Command::new(env!("CARGO_BIN_EXE_capture_inspect"))
        .args(["n", "--json", "--position", "1=1", "--position", "2=4", "--data-dir"])
        .arg(dir.path())
        .env_remove("KAFKA_BROKERS")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let objects: Vec<serde_json::Value> =
        String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), 3);
    assert_eq!(objects[0]["partition"], 0);
    assert_eq!(objects[0]["complete"], true);
    assert_eq!(objects[0]["end_offset"].as_u64(), objects[0]["last_offset"].as_u64().map(|o| o + 1));
    assert!(objects[0].get("lag").is_none(), "no position given for partition 0");
    let end = |p: usize| objects[p]["end_offset"].as_u64().unwrap();
    assert_eq!(objects[1]["position"], 1);
    assert_eq!(objects[1]["lag"].as_u64(), Some(end(1) - 1));
    assert_eq!(objects[2]["lag"].as_u64(), Some(end(2).saturating_sub(4)));
    let missing = inspect("absent");
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.trim(), "capture_inspect: error: topic 'absent' does not exist");
}

#[test]
fn a_corrupt_record_is_counted_and_skipped() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn LogBackend> = Arc::new(FileLog::new(dir.path()));
    common::capture(log.clone(), "c", 1, 50_000);
    let before = inspect_topic(log.as_ref(), "c", TIMEOUT).unwrap().remove(0);
    // Flip a byte inside the frame of record 5 ([len u32][crc u32][frame]).
    let path = dir.path().join("c/0/00000000000000000000.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut at = 0;
    for _ in 0..5 {
        at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    bytes[at + 8 + 40] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    let after = inspect_topic(log.as_ref(), "c", TIMEOUT).unwrap().remove(0);
    assert_eq!((after.corrupt, after.events), (1, before.events - 1), "{after}");
    assert_eq!(after.last_offset, before.last_offset, "{after}");
    assert!(after.complete, "{after}");
}
