//! `SourceEnd::CurrentEnd` reads everything a partition holds, whatever
//! ListOffsets says: the end comes from the fetch (issue 9, item 4).
//!
//! Against the mock cluster behind a proxy whose ListOffsets answers are
//! short (always runs), and against tansu, whose ListOffsets under-reports
//! after batched produces (only with `KAFKA_BROKERS` set; `.ci/run` sets it).

mod common;

use std::time::Duration;

use common::records::{expected, produce_range, read_all};
use common::short_end_proxy::{pin_versions, ShortEndProxy};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::ClientConfig;
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;

/// Sum over `0..partitions` of ListOffsets(latest), as `brokers` answers it.
fn listed_end(brokers: &str, topic: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    (0..partitions).map(|p| consumer.fetch_watermarks(topic, p, Duration::from_secs(30)).unwrap().1).sum()
}

/// Produces `0..count` in `batches` separately flushed batches, stamped
/// with the current time: a real broker's time-based retention (7 days by
/// default, first checked 30 s after it starts) deletes records stamped in
/// the past, which would read as records the source missed.
fn produce_in_batches(brokers: &str, topic: &str, partitions: u64, count: u64, batches: u64) {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let size = count.div_ceil(batches);
    for start in (0..count).step_by(size as usize) {
        produce_range(brokers, topic, partitions, start..(start + size).min(count), now_ms);
    }
}

#[test]
fn current_end_reads_past_a_short_list_offsets_on_the_mock() {
    let _deadline = common::deadline();
    let cluster: MockCluster<'static, DefaultProducerContext> = MockCluster::new(1).unwrap();
    pin_versions(&cluster);
    // Partition 3 stays empty: it must finish too.
    cluster.create_topic("short", 4, 1).unwrap();
    let proxy = ShortEndProxy::start(&cluster.bootstrap_servers());
    produce_in_batches(&proxy.address, "short", 3, 9_000, 10);
    // Through the proxy, ListOffsets says 3/4 of what the partitions hold.
    assert_eq!(listed_end(&proxy.address, "short", 4), 3 * (3_000 * 3 / 4));
    assert!(proxy.shortened.load(std::sync::atomic::Ordering::Relaxed) >= 3);
    assert_eq!(read_all(&proxy.address, "short", 1), expected(9_000));
    assert_eq!(read_all(&proxy.address, "short", 3), expected(9_000));
}

#[test]
fn current_end_reads_every_record_of_small_batches_on_a_real_broker() {
    let _deadline = common::deadline();
    let Some(brokers) = std::env::var("KAFKA_BROKERS").ok().filter(|b| !b.is_empty()) else {
        eprintln!("skipped: KAFKA_BROKERS is not set (run scripts/broker.sh start, then KAFKA_BROKERS=127.0.0.1:9092)");
        return;
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let topic = format!("small-batches-{}-{nanos}", std::process::id());
    let log = KafkaLog::new(&brokers, &[]).unwrap();
    log.create_topic(&topic, 3, false).unwrap();
    // Many small batches: what makes tansu's ListOffsets end short.
    let count = 9_000;
    produce_in_batches(&brokers, &topic, 3, count, 30);
    let listed = listed_end(&brokers, &topic, 3);
    eprintln!("ListOffsets(latest) summed over the partitions: {listed} (records produced: {count})");
    assert_eq!(read_all(&brokers, &topic, 1), expected(count));
    assert_eq!(read_all(&brokers, &topic, 2), expected(count));
}
