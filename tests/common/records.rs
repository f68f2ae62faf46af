//! Plain records for the source and sink tests: value i (as text) produced
//! to partition i % partitions, read back with `kafka_source` into a
//! fingerprint.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use timely::dataflow::operators::{Inspect, Probe};
use timely_kafka::connect::source::{time, KafkaSource, SourceConfig, SourceEnd, SourceRecord};
use timely_kafka::log::kafka::KafkaLog;

use super::Fingerprint;

/// Produces value i (as text) to partition i % partitions with timestamp
/// `base_ms + 10 * (i / partitions)`, so each partition's times increase.
pub fn produce(brokers: &str, topic: &str, partitions: u64, count: u64, base_ms: i64) {
    produce_range(brokers, topic, partitions, 0..count, base_ms);
}

/// [`produce`] for the values in `values` only, with a producer of its own,
/// flushed (every record acknowledged) before returning.
pub fn produce_range(brokers: &str, topic: &str, partitions: u64, values: Range<u64>, base_ms: i64) {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    for i in values {
        let payload = i.to_string();
        let record = BaseRecord::<(), String>::to(topic)
            .partition((i % partitions) as i32)
            .payload(&payload)
            .timestamp(base_ms + 10 * (i / partitions) as i64);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

pub fn parse(record: &SourceRecord<'_>) -> Option<u64> {
    std::str::from_utf8(record.payload?).ok()?.parse().ok()
}

/// Reads `topic` to `SourceEnd::CurrentEnd` with `workers` workers.
pub fn read_all(brokers: &str, topic: &str, workers: usize) -> Fingerprint {
    let brokers = brokers.to_string();
    let topic = topic.to_string();
    let results = timely::execute(timely::Config::process(workers), move |worker| {
        let kafka = KafkaLog::new(&brokers, &[]).unwrap();
        let config = SourceConfig::new(kafka).end(SourceEnd::CurrentEnd);
        let seen = Arc::new(Mutex::new(Fingerprint::default()));
        let sink = seen.clone();
        let (probe, status) = worker.dataflow(|scope| {
            let (values, status) = scope.kafka_source(config, &topic, None, |r| parse(r).map(|v| (time::offset(r), v)));
            (values.inspect(move |x| sink.lock().unwrap().add(*x)).probe().0, status)
        });
        while !probe.done() {
            worker.step();
        }
        let fp = *seen.lock().unwrap();
        // The worker's part of the source: complete, and it counted what it read.
        assert!(status.is_complete() && !status.is_failed(), "{status:?}");
        assert_eq!(status.stats().records, fp.count, "{status:?}");
        fp
    })
    .unwrap()
    .join();
    results.into_iter().map(|r| r.unwrap()).fold(Fingerprint::default(), Fingerprint::merge)
}

/// The fingerprint of `0..count`.
pub fn expected(count: u64) -> Fingerprint {
    let mut fp = Fingerprint::default();
    (0..count).for_each(|v| fp.add(v));
    fp
}
