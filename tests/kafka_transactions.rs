//! Transactions conformance of the broker in `KAFKA_BROKERS` (CI: Apache
//! Kafka and tansu): what the exactly-once pipelines build on.
//!
//! One partition receives, in this order: a transaction that is aborted,
//! one that is committed, one left open, and plain records after it. A
//! `read_committed` consumer must see the committed records only and stop
//! at the open transaction (the last stable offset), though the plain
//! records after it are stored (a `read_uncommitted` consumer sees every
//! record, which shows they are there). Once the open transaction commits,
//! the same consumer reads on past it.
//!
//! A broker without transactions (its `InitProducerId` for a transactional
//! id or its `EndTxn` fails) is skipped with one line, unless
//! `KAFKA_EXPECT_TRANSACTIONS=1` (CI sets it for Apache Kafka): then the
//! failure is the test's.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);
/// Records per transaction.
const EACH: usize = 50;

fn brokers() -> Option<String> {
    let brokers = std::env::var("KAFKA_BROKERS").ok().filter(|b| !b.is_empty());
    if brokers.is_none() {
        eprintln!("skipped: KAFKA_BROKERS is not set (run scripts/kafka.sh start, then KAFKA_BROKERS=its output)");
    }
    brokers
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn create_topic(brokers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = futures_executor::block_on(
        admin.create_topics(&[NewTopic::new(topic, 1, TopicReplication::Fixed(-1))], &options),
    )
    .expect("create topic");
    for result in results {
        result.unwrap_or_else(|(name, code)| panic!("create topic '{name}': {code}"));
    }
}

fn transactional(brokers: &str, id: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("transactional.id", id)
        .set("transaction.timeout.ms", "60000")
        .create()
        .expect("transactional producer")
}

/// Sends `values` to partition 0 of `topic` and waits until each is acknowledged.
fn send(producer: &BaseProducer, topic: &str, values: &[String]) {
    for value in values {
        producer
            .send(BaseRecord::<(), String>::to(topic).partition(0).payload(value))
            .map_err(|(e, _)| e)
            .expect("queue a record");
    }
    producer.flush(TIMEOUT).expect("every record acknowledged");
}

fn values(kind: &str) -> Vec<String> {
    (0..EACH).map(|i| format!("{kind}-{i}")).collect()
}

/// Reads partition 0 of `topic` from the start until the consumer reports
/// the partition's end (for `read_committed`, the last stable offset);
/// returns the values read and the offset where it stopped.
fn read_to_end(brokers: &str, topic: &str, isolation: &str) -> (Vec<String>, i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("conformance"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "{isolation} consumer of '{topic}' saw no end within {TIMEOUT:?}");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => seen.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned()),
            Some(Err(KafkaError::PartitionEOF(_))) => {
                let position = consumer.position().unwrap();
                let offset = position.find_partition(topic, 0).map(|p| p.offset());
                let stopped = match offset {
                    Some(Offset::Offset(o)) => o,
                    other => panic!("position of '{topic}' 0 after its end: {other:?}"),
                };
                return (seen, stopped);
            }
            Some(Err(e)) => panic!("{isolation} consumer of '{topic}': {e}"),
            None => {}
        }
    }
}

/// Whether the broker runs transactions; prints the skip line when not.
fn supported(result: Result<(), KafkaError>, step: &str, brokers: &str) -> bool {
    match result {
        Ok(()) => true,
        Err(e) if std::env::var("KAFKA_EXPECT_TRANSACTIONS").as_deref() == Ok("1") => {
            panic!("{step} on {brokers}: {e} (KAFKA_EXPECT_TRANSACTIONS=1)")
        }
        Err(e) => {
            eprintln!("skipped: the broker at {brokers} does not run transactions ({step}: {e})");
            false
        }
    }
}

#[test]
fn read_committed_hides_aborted_records_and_stops_at_an_open_transaction() {
    let Some(brokers) = brokers() else { return };
    let topic = unique("txn-conformance");
    create_topic(&brokers, &topic);

    let aborting = transactional(&brokers, &unique("aborting"));
    if !supported(aborting.init_transactions(TIMEOUT), "init_transactions", &brokers) {
        return;
    }
    aborting.begin_transaction().unwrap();
    send(&aborting, &topic, &values("aborted"));
    if !supported(aborting.abort_transaction(TIMEOUT), "abort_transaction", &brokers) {
        return;
    }

    let committing = transactional(&brokers, &unique("committing"));
    committing.init_transactions(TIMEOUT).unwrap();
    committing.begin_transaction().unwrap();
    send(&committing, &topic, &values("committed"));
    committing.commit_transaction(TIMEOUT).unwrap();

    let open = transactional(&brokers, &unique("open"));
    open.init_transactions(TIMEOUT).unwrap();
    open.begin_transaction().unwrap();
    send(&open, &topic, &values("open"));

    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .create()
        .expect("plain producer");
    send(&plain, &topic, &values("after-open"));

    // Every record is stored: the uncommitted view has them all.
    let (all, end) = read_to_end(&brokers, &topic, "read_uncommitted");
    let kinds = |seen: &[String]| -> BTreeSet<String> {
        seen.iter().map(|v| v.rsplit_once('-').map_or(v.clone(), |(k, _)| k.to_string())).collect()
    };
    assert_eq!(all.len(), 4 * EACH, "read_uncommitted saw {:?}", kinds(&all));
    assert_eq!(kinds(&all), ["aborted", "after-open", "committed", "open"].map(String::from).into());

    let (committed, stable) = read_to_end(&brokers, &topic, "read_committed");
    assert_eq!(committed, values("committed"), "read_committed must see the committed transaction only");
    assert!(
        stable < end,
        "read_committed stopped at offset {stable}, not before the open transaction (records end at {end})"
    );
    eprintln!(
        "read_committed: {} committed records, stopped at offset {stable} (the open transaction's start); records \
         end at {end}",
        committed.len()
    );

    open.commit_transaction(TIMEOUT).unwrap();
    let (after, stable_after) = read_to_end(&brokers, &topic, "read_committed");
    let expected: Vec<String> = [values("committed"), values("open"), values("after-open")].concat();
    assert_eq!(after, expected, "after the commit, read_committed reads past the former open transaction");
    assert!(stable_after >= end, "read_committed stopped at {stable_after} after the commit (end {end})");
}
