//! Large round trips against an independent Kafka-API broker (tansu, started
//! by `scripts/broker.sh start`; `.ci/run` does this). Skipped unless
//! `KAFKA_BROKERS` is set.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::{Command, Output};
use std::sync::Arc;

use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;

fn brokers() -> Option<String> {
    let brokers = std::env::var("KAFKA_BROKERS").ok().filter(|b| !b.is_empty());
    if brokers.is_none() {
        eprintln!("skipped: KAFKA_BROKERS is not set (run scripts/broker.sh start, then KAFKA_BROKERS=127.0.0.1:9092)");
    }
    brokers
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn run(program: &str, args: &[&str], brokers: &str) -> Output {
    let path = match program {
        "capture_send" => env!("CARGO_BIN_EXE_capture_send"),
        _ => env!("CARGO_BIN_EXE_capture_recv"),
    };
    let output = Command::new(path).args(args).env("KAFKA_BROKERS", brokers).output().unwrap();
    assert!(output.status.success(), "{program} failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

fn field(output: &Output, key: &str) -> u64 {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    last.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {last:?}"))
        .parse::<f64>()
        .unwrap() as u64
}

#[test]
fn cli_round_trip_five_to_three_on_a_real_broker() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let topic = unique("numbat");
    let count = 1_000_000u64;
    let send = run("capture_send", &[&topic, &count.to_string(), "-w5"], &brokers);
    assert_eq!(field(&send, "records"), 5 * count);
    let recv = run("capture_recv", &[&topic, "-w3", "--idle-timeout", "10"], &brokers);
    assert_eq!(common::recv_fingerprint(&recv.stdout), common::capture_send_numbers(5, count));
    assert_eq!(field(&recv, "bytes"), field(&send, "bytes"));
    // Re-running needs --overwrite, which deletes and recreates the topic.
    let again = Command::new(env!("CARGO_BIN_EXE_capture_send"))
        .args([&topic, "10", "-w5"])
        .env("KAFKA_BROKERS", &brokers)
        .output()
        .unwrap();
    assert!(!again.status.success());
    run("capture_send", &[&topic, "10", "-w2", "--overwrite"], &brokers);
    let recv = run("capture_recv", &[&topic], &brokers);
    assert_eq!(common::recv_fingerprint(&recv.stdout), common::capture_send_numbers(2, 10));
}

#[test]
fn library_round_trips_on_a_real_broker() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let log: Arc<dyn LogBackend> = Arc::new(KafkaLog::new(&brokers, &[]).unwrap());
    let topic = unique("three-five");
    common::capture(log.clone(), &topic, 3, 200_000);
    assert_eq!(common::replay(log.clone(), &topic, 5), common::Fingerprint::expected(3, 200_000));
    let topic: &'static str = Box::leak(unique("times").into_boxed_str());
    common::many_timestamps(log, topic);
}

/// tansu's ListOffsets(latest) under-reports a partition's end after batched
/// produces (3552 for 3600 records), while its fetch responses carry the
/// right high watermark: the reader's end must be the real one, and a
/// replay must read every record.
#[test]
fn end_offset_counts_every_record_produced_in_small_batches() {
    use timely_kafka::log::PartitionReader;
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let log: Arc<dyn LogBackend> = Arc::new(KafkaLog::new(&brokers, &[]).unwrap());
    let topic = unique("small-batches");
    log.create_topic(&topic, 1, false).unwrap();
    let (batches, per_batch) = (36u64, 100u64);
    let mut writer = log.writer(&topic, 0).unwrap();
    let mut expected = 0u64;
    for batch in 0..batches {
        for i in 0..per_batch {
            let value = batch * per_batch + i;
            expected = expected.wrapping_add(value);
            writer.append(&value.to_le_bytes()).unwrap();
        }
        writer.flush().unwrap();
    }
    drop(writer);
    let total = batches * per_batch;
    let mut reader = log.reader(&topic, 0, 0).unwrap();
    assert_eq!(reader.end_offset().unwrap(), total, "end offset of {total} records");
    let (mut count, mut sum) = (0u64, 0u64);
    while let Some(record) = reader.poll(std::time::Duration::from_secs(10)).unwrap() {
        count += 1;
        sum = sum.wrapping_add(u64::from_le_bytes(record.payload.try_into().unwrap()));
        if record.offset + 1 >= total {
            break;
        }
    }
    assert_eq!((count, sum), (total, expected));
    assert_eq!(reader.end_offset().unwrap(), total);
    // tansu cannot serve a fetch starting inside its last batch; the reader
    // must still deliver exactly the record sought.
    for offset in [total - 1, total / 2, 1] {
        let mut reader = log.reader(&topic, 0, 0).unwrap();
        reader.end_offset().unwrap();
        reader.seek(offset).unwrap();
        let record = reader.poll(std::time::Duration::from_secs(10)).unwrap().expect("a record");
        assert_eq!(record.offset, offset);
        assert_eq!(u64::from_le_bytes(record.payload.try_into().unwrap()), offset);
    }
}
