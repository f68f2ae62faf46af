//! Capture and replay over the Kafka protocol, against librdkafka's mock
//! cluster (real TCP on 127.0.0.1, in process; nothing to install).
//!
//! The mock keeps only the newest 5 MiB of each partition, so these runs stay
//! well below that; large runs are in `tests/kafka_broker.rs` against tansu.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{capture, replay, Fingerprint};
use rdkafka::mocking::MockCluster;
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;

fn mock_log(
    topic: &str,
    partitions: i32,
) -> (MockCluster<'static, rdkafka::producer::DefaultProducerContext>, Arc<dyn LogBackend>) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(topic, partitions, 1).unwrap();
    let log = KafkaLog::new(&cluster.bootstrap_servers(), &[]).unwrap();
    (cluster, Arc::new(log))
}

fn round_trip(send: usize, recv: usize, count: u64) {
    let (_cluster, log) = mock_log("t", send as i32);
    capture(log.clone(), "t", send, count);
    assert_eq!(replay(log, "t", recv), Fingerprint::expected(send as u64, count));
}

#[test]
fn kafka_one_to_one() {
    let _deadline = common::deadline();
    round_trip(1, 1, 100_000);
}

#[test]
fn kafka_five_to_three() {
    let _deadline = common::deadline();
    round_trip(5, 3, 20_000);
}

#[test]
fn kafka_three_to_five() {
    let _deadline = common::deadline();
    round_trip(3, 5, 20_000);
}

#[test]
fn kafka_many_timestamps() {
    let _deadline = common::deadline();
    let (_cluster, log) = mock_log("times", 3);
    common::many_timestamps(log, "times");
}

/// An event larger than Kafka's message limit travels as chunk records and
/// comes back whole.
#[test]
fn five_megabyte_event_is_chunked_and_reassembled() {
    let _deadline = common::deadline();
    use timely::dataflow::operators::capture::event::{Event, EventIterator, EventPusher};
    use timely::progress::Stamp;
    use timely_kafka::{EventConsumer, EventProducer};

    let (_cluster, log) = mock_log("big", 1);
    let big: Vec<u64> = (0..625_000).collect(); // 5 MB
    let mut producer = EventProducer::<u64, Vec<u64>>::new(log.writer("big", 0).unwrap(), 0, 1).unwrap();
    producer.push(Event::Messages(Stamp::from_elem(0), big.clone()));
    producer.push(Event::Progress(vec![(0, -1)]));
    let stats = producer.finish().unwrap();
    assert!(stats.frames > 6, "expected the event in several chunk records, got {} frames", stats.frames);

    let mut consumer =
        EventConsumer::<u64, Vec<u64>>::new(log.reader("big", 0, 0).unwrap()).idle_timeout(Duration::from_secs(20));
    let handle = consumer.status();
    let mut events = Vec::new();
    while !handle.is_complete() {
        if let Some(event) = consumer.next() {
            events.push(event.into_owned());
        }
    }
    assert_eq!(events, vec![Event::Messages(Stamp::from_elem(0), big), Event::Progress(vec![(0, -1)])]);
}
