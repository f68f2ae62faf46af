//! `temp_gen`: random temperature readings into a Kafka topic, written by a
//! timely dataflow through `kafka_sink`.
//!
//! ```text
//! cargo run --example temp_gen -- [--brokers B] [--topic temps] [--count 10000] [--sensors 10] [--rate 5000] [-w N]
//! ```
//!
//! Against librdkafka's mock cluster (it cannot create topics: pre-create them):
//!
//! ```text
//! cargo run --bin mock_broker -- --port 19095 --topic temps:3 &
//! cargo run --example temp_gen -- --brokers 127.0.0.1:19095
//! ```
//!
//! or against any Kafka (`--brokers` defaults to `KAFKA_BROKERS`, then
//! 127.0.0.1:9092; `scripts/broker.sh start` runs one there). The topic is
//! created with `--partitions` (3) partitions if missing; an existing one with
//! at least that many is used as it is.
//!
//! Each record has key `sensor-7` and value `sensor-7 21.37`. A sensor's
//! temperature is a random walk: 20.0 plus the sum of its variations so far,
//! each variation `random() - random()` (two uniform [0, 1) draws). Sensor s is
//! written by worker s % workers to partition s % partitions (a custom
//! partitioner), so each sensor's readings stay in order in one partition.
//!
//! Kafka stamps each record with its send time, the event time `average_temp`
//! buckets by. `--rate` paces the whole job at that many records per second (in
//! 100 ms rounds; each round is one timely time, and the sink flushes as the
//! frontier passes it), so the default 10000 records span two seconds; `--rate 0`
//! sends as fast as possible.
//!
//! Ends with one line `temp_gen: records=<n>`: the records the broker acknowledged.

#[path = "support/properties.rs"]
mod properties;

use std::time::{Duration, Instant};

use clap::Parser;
use rand::Rng;
use timely::dataflow::operators::Probe;
use timely::dataflow::{InputHandleVec, ProbeHandle};
use timely_kafka::connect::sink::{KafkaSink, SinkConfig};
use timely_kafka::execute;
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;

const PROGRAM: &str = "temp_gen";

/// Produce random temperature readings to a Kafka topic.
#[derive(Parser, Debug)]
#[command(name = PROGRAM)]
struct Args {
    /// Kafka bootstrap brokers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// librdkafka property KEY=VALUE (repeatable), e.g. `-X security.protocol=SASL_SSL`.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = properties::parse)]
    properties: Vec<(String, String)>,
    /// Topic to write.
    #[arg(long, default_value = "temps")]
    topic: String,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    /// Number of readings.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Number of sensors.
    #[arg(long, default_value_t = 10)]
    sensors: u64,
    /// Readings per second over the whole job (0: as fast as possible).
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// Timely worker threads.
    #[arg(short = 'w', long, default_value_t = 1)]
    workers: usize,
}

fn fail(error: impl std::fmt::Display) -> ! {
    eprintln!("{PROGRAM}: error: {error}");
    std::process::exit(1);
}

/// Creates `topic` unless it exists with at least `partitions` partitions.
fn ensure_topic(kafka: &KafkaLog, topic: &str, partitions: u32) {
    if let Err(error) = kafka.create_topic(topic, partitions, false) {
        match kafka.topic_info(topic) {
            Ok(Some(info)) if info.partitions >= partitions => {}
            Ok(Some(info)) => {
                fail(format!("topic '{topic}' has {} partitions, at least {partitions} needed", info.partitions))
            }
            _ => fail(error),
        }
    }
}

/// The sensor number in a `sensor-<n>` key.
fn sensor_of(key: &[u8]) -> u32 {
    std::str::from_utf8(key).ok().and_then(|k| k.strip_prefix("sensor-")).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn main() {
    let args = Args::parse();
    if args.sensors == 0 || args.workers == 0 {
        fail("--sensors and -w must be at least 1");
    }
    let kafka = KafkaLog::new(&args.brokers, &args.properties).unwrap_or_else(|e| fail(e));
    ensure_topic(&kafka, &args.topic, args.partitions);
    let config = if args.workers > 1 { timely::Config::process(args.workers) } else { timely::Config::thread() };
    let written = execute(config, move |worker| {
        let (index, peers) = (worker.index() as u64, worker.peers() as u64);
        let (count, sensors, rate) = (args.count, args.sensors, args.rate);
        let sink_config = SinkConfig::new(kafka.clone()).partitioner(|key, partitions| sensor_of(key) % partitions);
        let mut input = InputHandleVec::<u64, (String, String)>::new();
        let probe = ProbeHandle::new();
        let sink = worker.dataflow::<u64, _, _>(|scope| {
            let readings = input.to_stream(scope);
            readings.clone().probe_with(&probe);
            readings.kafka_sink(sink_config, &args.topic)
        });

        // Reading i belongs to sensor i % sensors, which belongs to one worker.
        let mut temperatures = vec![20.0f64; sensors as usize];
        let mut rng = rand::rng();
        let round = Duration::from_millis(100);
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < count {
            let limit = if rate == 0 { count } else { (rate * (input.time() + 1) / 10).clamp(sent, count) };
            for i in sent..limit {
                let sensor = i % sensors;
                if sensor % peers == index {
                    let temperature = &mut temperatures[sensor as usize];
                    *temperature += rng.random::<f64>() - rng.random::<f64>();
                    input.send((format!("sensor-{sensor}"), format!("sensor-{sensor} {temperature:.2}")));
                }
            }
            sent = limit;
            input.advance_to(input.time() + 1);
            while probe.less_than(input.time()) {
                worker.step();
            }
            if sent < count {
                let next = start + round * (*input.time() as u32);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }
        drop(input);
        while worker.step() {}
        Ok(sink.stats().acknowledged)
    })
    .unwrap_or_else(|e| fail(e));
    let records: u64 = written.into_iter().sum();
    println!("{PROGRAM}: records={records}");
}
