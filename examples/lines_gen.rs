//! `lines_gen`: writes text lines for `word_count` to a Kafka topic, fast
//! (librdkafka, ~1 M lines/s), for scripts/bench_pipeline.sh.
//!
//! ```text
//! lines_gen --brokers B --topic T --lines N [--first I] [--unique]
//! ```
//!
//! By default each line holds 1 to 8 words of a fixed 40-word vocabulary
//! (deterministic per line number): the state `word_count` keeps stays the
//! same size however many lines are written. `--unique` writes line `i` as
//! the one word `k<i>` instead: N distinct words. Lines are spread over the
//! topic's partitions (created with 2 if missing) by line number; `--first`
//! numbers the lines from I (to append more unique words). Ends with one
//! line `lines_gen: lines=<n> bytes=<b> seconds=<s>`.

use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;

/// Write text lines to a Kafka topic.
#[derive(Parser, Debug)]
#[command(name = "lines_gen")]
struct Args {
    /// Kafka bootstrap brokers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Topic to write.
    #[arg(long)]
    topic: String,
    /// How many lines.
    #[arg(long)]
    lines: u64,
    /// The first line's number.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// One distinct word per line (`k<i>`).
    #[arg(long)]
    unique: bool,
}

fn fail(error: impl std::fmt::Display) -> ! {
    eprintln!("lines_gen: error: {error}");
    std::process::exit(1);
}

/// Line `i`: 1 to 8 words of the vocabulary `w0`..`w39`, chosen by a hash of `i`.
fn line(i: u64, unique: bool, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    if unique {
        let _ = write!(out, "k{i}");
        return;
    }
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5851_F42D_4C95_7F2D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words = 1 + next() % 8;
    for n in 0..words {
        let _ = write!(out, "{}w{}", if n == 0 { "" } else { " " }, next() % 40);
    }
}

fn main() {
    let args = Args::parse();
    let kafka = KafkaLog::new(&args.brokers, &[]).unwrap_or_else(|e| fail(e));
    let partitions = match kafka.topic_info(&args.topic) {
        Ok(Some(info)) => info.partitions,
        Ok(None) => {
            kafka.create_topic(&args.topic, 2, false).unwrap_or_else(|e| fail(e));
            2
        }
        Err(error) => fail(error),
    };
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap_or_else(|e| fail(e));
    let started = Instant::now();
    let (mut text, mut bytes) = (String::new(), 0u64);
    for i in args.first..args.first + args.lines {
        line(i, args.unique, &mut text);
        bytes += text.len() as u64;
        let mut record =
            BaseRecord::<(), str>::to(&args.topic).partition((i % partitions as u64) as i32).payload(&text);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    producer.poll(Duration::from_millis(10));
                    record = returned;
                }
                Err((error, _)) => fail(format!("topic '{}': {error}", args.topic)),
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap_or_else(|e| fail(format!("topic '{}': flush: {e}", args.topic)));
    println!("lines_gen: lines={} bytes={bytes} seconds={:.2}", args.lines, started.elapsed().as_secs_f64());
}
