//! `word_count`: counts the words of the text lines in a Kafka topic and writes
//! `(word, count)` records to another, with `kafka_source` and `kafka_sink`.
//!
//! ```text
//! cargo run --example word_count -- [--brokers B] [--input lines] [--output word-counts] [--produce-sample] [-w N]
//! ```
//!
//! Self-contained run against librdkafka's mock cluster (it cannot create
//! topics: pre-create them), or against any Kafka (`--brokers` defaults to
//! `KAFKA_BROKERS`, then 127.0.0.1:9092), where missing topics are created
//! with 2 partitions:
//!
//! ```text
//! cargo run --bin mock_broker -- --port 19095 --topic lines:2 --topic word-counts:2 &
//! cargo run --example word_count -- --brokers 127.0.0.1:19095 --produce-sample
//! ```
//!
//! `--produce-sample` first writes a few lines of sample text into the input
//! topic (again on every run, so counts grow). The job then reads every record
//! of the input topic present when it starts (`SourceEnd::CurrentEnd`), its
//! partitions spread over the workers; splits lines into lower-case words;
//! exchanges the words by hash, so each word is counted by one worker and the
//! counts are global; and once the frontier has passed a time, writes the new
//! count of each word that changed at that time, keyed by the word (a
//! changelog: the latest record per key is the count, fit for a compacted
//! topic). Every record is read at time 0 here, so each word is written once,
//! when the input is complete; choose `time::event_time_bucket` instead to
//! update counts per interval on a live topic. The sink flushes as its
//! frontier advances, so the job ends only after the broker has acknowledged
//! every count.
//!
//! Prints the most frequent words, then one line
//! `word_count: words=<distinct words> lines=<n> written=<records acknowledged>`.

use std::cell::Cell;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use clap::Parser;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Inspect, Probe, ToStream};
use timely::dataflow::ProbeHandle;
use timely_kafka::cli;
use timely_kafka::connect::sink::{kafka_sink, SinkConfig};
use timely_kafka::connect::source::{kafka_source, SourceConfig, SourceEnd, SourceRecord};
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;
use timely_kafka::CodecId;

const PROGRAM: &str = "word_count";

const SAMPLE: &[&str] = &[
    "The quick brown fox jumps over the lazy dog.",
    "A stream is a sequence of records, and a log is a stream that remembers.",
    "Timely dataflow tracks progress: the frontier says which times may still arrive.",
    "Kafka keeps the records; timely counts the words; Kafka keeps the counts.",
    "The dog sleeps, the fox runs, and the stream goes on.",
    "Every word is counted once, by the one worker its hash chooses.",
];

/// Count the words of a Kafka topic of text lines into another topic.
#[derive(Parser, Debug)]
#[command(name = PROGRAM)]
struct Args {
    /// Kafka bootstrap brokers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Topic of text lines to read.
    #[arg(long, default_value = "lines")]
    input: String,
    /// Topic to write `(word, count)` records to.
    #[arg(long, default_value = "word-counts")]
    output: String,
    /// First write a few sample lines into the input topic.
    #[arg(long)]
    produce_sample: bool,
    /// Timely worker threads.
    #[arg(short = 'w', long, default_value_t = 1)]
    workers: usize,
}

/// Creates `topic` unless it exists with at least `partitions` partitions.
fn ensure_topic(kafka: &KafkaLog, topic: &str, partitions: u32) {
    if let Err(error) = kafka.create_topic(topic, partitions, CodecId::None, false) {
        match kafka.topic_info(topic) {
            Ok(Some(_)) => {}
            _ => cli::fail(PROGRAM, error),
        }
    }
}

/// Writes the sample lines to `topic` (keyed by line number) with a one-worker dataflow.
fn produce_sample(kafka: KafkaLog, topic: String) -> u64 {
    timely::execute_directly(move |worker| {
        let sink = worker.dataflow::<u64, _, _>(|scope| {
            let lines = SAMPLE.iter().enumerate().map(|(i, line)| (i.to_string(), line.to_string()));
            kafka_sink(lines.to_stream(scope).container::<Vec<_>>(), SinkConfig::new(kafka), &topic)
        });
        while worker.step() {}
        sink.acknowledged()
    })
}

/// The lower-case words of a line, without surrounding punctuation.
fn words(line: &str) -> Vec<(String, u64)> {
    line.split_whitespace()
        .map(|word| word.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|word| !word.is_empty())
        .map(|word| (word, 1))
        .collect()
}

fn hash(word: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    word.hash(&mut hasher);
    hasher.finish()
}

/// What one worker did.
struct Report {
    lines: u64,
    words: usize,
    written: u64,
    top: Vec<(String, u64)>,
}

fn main() {
    cli::exit_on_panic(PROGRAM);
    let args = Args::parse();
    if args.workers == 0 {
        cli::fail(PROGRAM, "-w must be at least 1");
    }
    let kafka = KafkaLog::new(&args.brokers, &[]).unwrap_or_else(|e| cli::fail(PROGRAM, e));
    ensure_topic(&kafka, &args.input, 2);
    ensure_topic(&kafka, &args.output, 2);
    if args.produce_sample {
        let written = produce_sample(kafka.clone(), args.input.clone());
        eprintln!("{PROGRAM}: wrote {written} sample lines to '{}'", args.input);
    }
    let config = if args.workers > 1 { timely::Config::process(args.workers) } else { timely::Config::thread() };
    let guards = timely::execute(config, move |worker| {
        // Worker j reads the partitions p with p % peers == j; one with none finishes at once.
        let source_config = SourceConfig::new(kafka.clone()).end(SourceEnd::CurrentEnd);
        let sink_config = SinkConfig::new(kafka.clone());
        let lines = Rc::new(Cell::new(0u64));
        let counted = lines.clone();
        let read_line = move |record: &SourceRecord<'_>| {
            let line = String::from_utf8_lossy(record.payload?).into_owned();
            counted.set(counted.get() + 1);
            Some((0, line))
        };
        let counts = Rc::new(Cell::new(0usize));
        let distinct = counts.clone();
        let top = Rc::new(std::cell::RefCell::new(HashMap::<String, u64>::new()));
        let final_counts = top.clone();
        let probe = ProbeHandle::new();
        let sink = worker.dataflow::<u64, _, _>(|scope| {
            let words = kafka_source(scope, source_config, &args.input, None, read_line).flat_map(|line| words(&line));
            let by_word = Exchange::new(|(word, _): &(String, u64)| hash(word));
            let counted = words.unary_frontier::<CapacityContainerBuilder<Vec<(String, u64)>>, _, _, _>(
                by_word,
                "WordCount",
                move |_capability, _info| {
                    let mut totals = HashMap::<String, u64>::new();
                    // Per time: a capability for it and the counts that arrived at it.
                    let mut pending = BTreeMap::new();
                    move |(input, frontier), output| {
                        let port = output.output_index();
                        input.for_each_stamp(|capability, data| {
                            let Some(capability) = capability.retain_least(port) else { return };
                            let (_, changes) =
                                pending.entry(*capability.time()).or_insert_with(|| (capability, HashMap::new()));
                            for (word, count) in data.flat_map(|d| d.drain(..)) {
                                *changes.entry(word).or_insert(0u64) += count;
                            }
                        });
                        // Times the frontier has passed are complete: apply and emit their changes.
                        while let Some(entry) = pending.first_entry() {
                            if frontier.frontier().less_equal(entry.key()) {
                                break;
                            }
                            let (capability, changes) = entry.remove();
                            let mut session = output.session(&capability);
                            for (word, count) in changes {
                                let total = totals.entry(word.clone()).or_insert(0);
                                *total += count;
                                session.give((word, *total));
                            }
                            distinct.set(totals.len());
                        }
                    }
                },
            );
            let counted = counted.inspect(move |(word, count)| {
                final_counts.borrow_mut().insert(word.clone(), *count);
            });
            counted.clone().probe_with(&probe);
            kafka_sink(counted.map(|(word, count)| (word, count.to_string())), sink_config, &args.output)
        });
        while !probe.done() {
            worker.step();
        }
        while worker.step() {}
        let mut top: Vec<(String, u64)> = top.borrow_mut().drain().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(5);
        Report { lines: lines.get(), words: counts.get(), written: sink.acknowledged(), top }
    })
    .unwrap_or_else(|e| cli::fail(PROGRAM, e));
    let (mut lines, mut words, mut written, mut top) = (0, 0, 0, Vec::new());
    for result in guards.join() {
        let report = result.unwrap_or_else(|e| cli::fail(PROGRAM, e));
        lines += report.lines;
        words += report.words;
        written += report.written;
        top.extend(report.top);
    }
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let top: Vec<String> = top.iter().take(5).map(|(word, count)| format!("{word}={count}")).collect();
    println!("{PROGRAM}: top {}", top.join(" "));
    println!("{PROGRAM}: words={words} lines={lines} written={written}");
}
