//! `word_count`: counts the words of the text lines in a Kafka topic and writes
//! `(word, count)` records to another, with `kafka_source` and `kafka_sink`,
//! or exactly once with `connect::transactional`.
//!
//! ```text
//! cargo run --example word_count -- [--brokers B] [--input lines] [--output word-counts] [--produce-sample]
//!                                   [--live [--idle-exit SECS]] [--exactly-once] [-w N]
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
//! topic (again on every run, so counts grow). The job reads the input
//! topic's partitions, spread over the workers; splits lines into lower-case
//! words; exchanges the words by hash, so each word is counted by one worker
//! and the counts are global; and once the frontier has passed a time,
//! writes the new count of each word that changed at that time, keyed by the
//! word, the count in decimal (a changelog: the latest record per key is the
//! count, fit for a compacted topic).
//!
//! By default it reads every record present when it starts
//! (`SourceEnd::CurrentEnd`), all at time 0, so each word is written once.
//! `--live` follows the topic instead, a record's time being its Kafka
//! timestamp rounded down to `--interval-ms`, so counts are written per
//! interval; `--idle-exit SECS` stops once no record has arrived for SECS
//! seconds.
//!
//! `--exactly-once` writes the counts in Kafka transactions with the
//! pipeline's progress (topic `<output>.progress`, created if missing): the
//! job can be killed at any moment and started again with the same
//! arguments, any number of times, and the output topic holds, for
//! read_committed readers, each word's counts exactly as one uninterrupted
//! run would have written them. It needs a broker with transactions (Apache
//! Kafka) and refuses others in one line. The counts are the pipeline's
//! declared state (`counts`), kept in the output topic itself: each output
//! record is a word's new count, so the output is the state's changelog
//! (created compacted with no retention; an existing output must be so). A
//! start restores the counts as of the last commit by reading the output's
//! committed records, and reads the input only from the offsets that commit
//! bound, so a restart takes time proportional to the number of distinct
//! words, not to the input's history. `--state-changelog` writes the
//! counts to a separate compacted changelog topic `<output>.state.counts`
//! instead (every count written twice); `--replay` keeps no state and
//! rebuilds the counts from the input's start at each start.
//!
//! Prints the most frequent words, then one line
//! `word_count: words=<distinct words> lines=<n> written=<records written>`.

#[path = "support/properties.rs"]
mod properties;

use std::cell::{Cell, RefCell};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Inspect, Probe, ToStream};
use timely::dataflow::{ProbeHandle, Stream};
use timely_kafka::connect::sink::{KafkaSink, SinkConfig};
use timely_kafka::connect::source::{time, KafkaSource, SourceConfig, SourceEnd, SourceRecord};
use timely_kafka::connect::transactional::{self, PipelineConfig};
use timely_kafka::execute;
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;

const PROGRAM: &str = "word_count";
/// The name of the declared state (the counts): its changelog is `<output>.state.counts`.
const STATE: &str = "counts";

const SAMPLE: &[&str] = &[
    "The quick brown fox jumps over the lazy dog.",
    "A stream is a sequence of records, and a log is a stream that remembers.",
    "Timely dataflow tracks progress: the frontier says which times may still arrive.",
    "Kafka keeps the records; timely counts the words; Kafka keeps the counts.",
    "The dog sleeps, the fox runs, and the stream goes on.",
    "Every word is counted once, by the one worker its hash chooses.",
];

/// Count the words of a Kafka topic of text lines into another topic.
#[derive(Parser, Debug, Clone)]
#[command(name = PROGRAM)]
struct Args {
    /// Kafka bootstrap brokers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// librdkafka property KEY=VALUE (repeatable), e.g. `-X security.protocol=SASL_SSL`.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = properties::parse)]
    properties: Vec<(String, String)>,
    /// Topic of text lines to read.
    #[arg(long, default_value = "lines")]
    input: String,
    /// Topic to write `(word, count)` records to.
    #[arg(long, default_value = "word-counts")]
    output: String,
    /// First write a few sample lines into the input topic.
    #[arg(long)]
    produce_sample: bool,
    /// Follow the input topic instead of stopping at its current end.
    #[arg(long)]
    live: bool,
    /// With --live: stop once no record has arrived for SECS seconds.
    #[arg(long, value_name = "SECS", requires = "live")]
    idle_exit: Option<u64>,
    /// With --live: the width of a time, in milliseconds of Kafka timestamp.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Write the counts exactly once (Kafka transactions; restartable).
    #[arg(long)]
    exactly_once: bool,
    /// With --exactly-once: start over although the output holds committed
    /// records and no commit of this pipeline is found (writes them again).
    #[arg(long, requires = "exactly_once")]
    fresh: bool,
    /// With --exactly-once: keep no state; rebuild the counts at each start
    /// by reading the input again from its beginning.
    #[arg(long, requires = "exactly_once")]
    replay: bool,
    /// With --exactly-once: keep the counts in a separate changelog topic
    /// `<output>.state.counts`, not in the output itself.
    #[arg(long, requires = "exactly_once", conflicts_with = "replay")]
    state_changelog: bool,
    /// With --exactly-once: the shortest time between commits, in milliseconds.
    #[arg(long, default_value_t = 500)]
    commit_interval_ms: u64,
    /// Timely's cluster: -w workers per process, -n processes, -p this
    /// one's index, --hostfile (a pipeline's processes share one output
    /// and one identity: run them with the same arguments but -p).
    #[command(flatten)]
    timely: timely_kafka_cli::TimelyArgs,
    /// --metrics-addr: serve metrics in the Prometheus text format.
    #[command(flatten)]
    metrics: timely_kafka_cli::MetricsArgs,
}

fn fail(error: impl std::fmt::Display) -> ! {
    eprintln!("{PROGRAM}: error: {error}");
    std::process::exit(1);
}

/// Creates `topic` unless it exists.
fn ensure_topic(kafka: &KafkaLog, topic: &str, partitions: u32) {
    if let Err(error) = kafka.create_topic(topic, partitions, false) {
        match kafka.topic_info(topic) {
            Ok(Some(_)) => {}
            _ => fail(error),
        }
    }
}

/// Writes the sample lines to `topic` (keyed by line number) with a one-worker dataflow.
fn produce_sample(kafka: KafkaLog, topic: String) -> timely_kafka::Result<u64> {
    let written = execute(timely::Config::thread(), move |w| {
        let sink = w.dataflow::<u64, _, _>(|scope| {
            let lines = SAMPLE.iter().enumerate().map(|(i, line)| (i.to_string(), line.to_string()));
            lines.to_stream(scope).container::<Vec<_>>().kafka_sink(SinkConfig::new(kafka.clone()), &topic)
        });
        while w.step() {}
        Ok(sink.stats().acknowledged)
    })?;
    Ok(written.into_iter().sum())
}

/// The lower-case words of a line, without surrounding punctuation.
fn words(line: &str) -> Vec<(String, u64)> {
    line.split_whitespace()
        .map(|word| word.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|word| !word.is_empty())
        .map(|word| (word, 1))
        .collect()
}

/// An output record (word, decimal count) as an entry of the counts: the
/// inverse of how the counts are written.
fn decode_count(key: &[u8], value: &[u8]) -> Result<(String, u64), String> {
    let word = std::str::from_utf8(key).map_err(|e| format!("key not UTF-8: {e}"))?;
    let count = std::str::from_utf8(value).ok().and_then(|v| v.parse::<u64>().ok());
    let count = count.ok_or_else(|| format!("value {:?} is not a decimal count", String::from_utf8_lossy(value)))?;
    Ok((word.to_string(), count))
}

fn hash(word: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    word.hash(&mut hasher);
    hasher.finish()
}

/// Running counts per word, starting from the `restored` counts (the
/// state as of the last commit, exchanged by word like the words): once
/// the frontier has passed a time, the new total of every word that
/// changed at it, at that time.
fn count<'scope>(
    words: Stream<'scope, u64, Vec<(String, u64)>>,
    restored: Stream<'scope, u64, Vec<(String, u64)>>,
    distinct: Rc<Cell<usize>>,
) -> Stream<'scope, u64, Vec<(String, u64)>> {
    let by_word = Exchange::new(|(word, _): &(String, u64)| hash(word));
    let restored_by_word = Exchange::new(|(word, _): &(String, u64)| hash(word));
    words.binary_frontier::<_, CapacityContainerBuilder<Vec<(String, u64)>>, _, _, _, _>(
        restored,
        by_word,
        restored_by_word,
        "WordCount",
        move |_capability, _info| {
            let mut totals = HashMap::<String, u64>::new();
            // Per time: a capability for it and the counts that arrived at it.
            let mut pending = BTreeMap::new();
            move |(input, frontier), (restored, restored_frontier), output| {
                // The state at the last commit: no output (committed already).
                restored.for_each(|_, data| {
                    for (word, total) in data.drain(..) {
                        totals.insert(word, total);
                    }
                    distinct.set(totals.len());
                });
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
                // (After the whole restored state: it comes at time 0.)
                while let Some(entry) = pending.first_entry() {
                    if frontier.frontier().less_equal(entry.key())
                        || restored_frontier.frontier().less_equal(entry.key())
                    {
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
    )
}

/// What one worker did.
struct Report {
    lines: u64,
    words: usize,
    written: u64,
    top: Vec<(String, u64)>,
}

fn run(args: Args, kafka: KafkaLog) -> timely_kafka::Result<Vec<Report>> {
    let config = args.timely.config()?;
    // Records this process has read (all workers), for --idle-exit.
    let seen = Arc::new(AtomicU64::new(0));
    execute(config, move |w| {
        let end = if args.live { SourceEnd::Live } else { SourceEnd::CurrentEnd };
        // Worker j reads the partitions p with p % peers == j; one with none finishes at once.
        let source_config = SourceConfig::new(kafka.clone()).end(end);
        let stop = source_config.stop.clone();
        let lines = Rc::new(Cell::new(0u64));
        let (counted, seen_by_source) = (lines.clone(), seen.clone());
        let bucket = time::event_time_bucket(args.interval_ms);
        let live = args.live;
        let read_line = move |record: &SourceRecord<'_>| {
            seen_by_source.fetch_add(1, Ordering::Relaxed);
            let line = String::from_utf8_lossy(record.payload?).into_owned();
            counted.set(counted.get() + 1);
            Some((if live { bucket(record) } else { 0 }, line))
        };
        let mut pipeline = if args.exactly_once {
            let mut config = PipelineConfig::new(kafka.clone(), &args.input, &args.output)
                .commit_interval(Duration::from_millis(args.commit_interval_ms));
            if args.state_changelog {
                config = config.state(STATE);
            } else if !args.replay {
                config = config.state_in_output(STATE);
            }
            config.fresh = args.fresh;
            // Tests only: abort at a named point (tests/pipeline_chaos.rs).
            config.crash_at = std::env::var("TIMELY_KAFKA_CRASH_AT").ok();
            let pipeline = transactional::open(w, &config)?;
            if w.index() == 0 {
                let resume = pipeline.resume();
                eprintln!("{PROGRAM}: resuming after commit {} at frontier {}", resume.commit, resume.frontier);
            }
            let restored = if args.replay {
                Vec::new()
            } else {
                let (restored, stats) = if args.state_changelog {
                    pipeline.restore::<String, u64>(w, STATE)?
                } else {
                    pipeline.restore_with(w, STATE, decode_count)?
                };
                eprintln!(
                    "{PROGRAM}: worker {} restored {} counts from {} changelog records ({} bytes) in {:.3}s",
                    w.index(),
                    stats.keys,
                    stats.records,
                    stats.bytes,
                    stats.elapsed.as_secs_f64()
                );
                restored
            };
            Some((pipeline, restored))
        } else {
            None
        };
        let distinct = Rc::new(Cell::new(0usize));
        let top = Rc::new(RefCell::new(HashMap::<String, u64>::new()));
        let final_counts = top.clone();
        let probe = ProbeHandle::new();
        let written = w.dataflow::<u64, _, _>(|scope| {
            let (lines, binding, restored) = match &mut pipeline {
                Some((pipeline, restored)) => {
                    let (lines, binding, _) = pipeline.source(scope, source_config, read_line);
                    (lines, Some(binding), std::mem::take(restored))
                }
                None => (scope.kafka_source(source_config, &args.input, None, read_line).0, None, Vec::new()),
            };
            let restored = restored.to_stream(scope);
            let counts = count(lines.flat_map(|line| words(&line)), restored, distinct.clone())
                .inspect(move |(word, count)| {
                    final_counts.borrow_mut().insert(word.clone(), *count);
                })
                .probe_with(&probe);
            let records = counts.clone().map(|(word, count)| (word, count.to_string()));
            match (pipeline, binding) {
                (Some((pipeline, _)), Some(binding)) => {
                    let handle = if !args.state_changelog {
                        // With the state in the output, the outputs are its changes.
                        pipeline.sink(records, binding)
                    } else {
                        // The counts written are the state's changes too.
                        let changes = pipeline.changes(STATE, counts.map(|(word, count)| (word, Some(count))))?;
                        pipeline.sink_with_state(records, binding, vec![changes])
                    };
                    Ok(Box::new(move || handle.stats().written) as Box<dyn Fn() -> u64>)
                }
                _ => {
                    let handle = records.kafka_sink(SinkConfig::new(kafka.clone()), &args.output);
                    Ok(Box::new(move || handle.stats().acknowledged) as Box<dyn Fn() -> u64>)
                }
            }
        })?;
        let (mut last_seen, mut last_change) = (0, Instant::now());
        while !probe.done() {
            w.step_or_park(Some(Duration::from_millis(5)));
            if let Some(idle) = args.idle_exit {
                let now = seen.load(Ordering::Relaxed);
                if now != last_seen {
                    (last_seen, last_change) = (now, Instant::now());
                } else if last_change.elapsed() >= Duration::from_secs(idle) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
        // The sink's last commit.
        while w.step_or_park(Some(Duration::from_millis(5))) {}
        let mut top: Vec<(String, u64)> = top.borrow_mut().drain().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(5);
        Ok(Report { lines: lines.get(), words: distinct.get(), written: written(), top })
    })
}

fn main() {
    let args = Args::parse();
    args.metrics.install().unwrap_or_else(|e| fail(e));
    let metrics = args.metrics.clone();
    let kafka = KafkaLog::new(&args.brokers, &args.properties).unwrap_or_else(|e| fail(e));
    ensure_topic(&kafka, &args.input, 2);
    if args.exactly_once && !args.replay && !args.state_changelog {
        // The output keeps the counts: compacted, no retention.
        transactional::create_state_output(&kafka, &args.output, 2).unwrap_or_else(|e| fail(e));
    } else {
        ensure_topic(&kafka, &args.output, 2);
    }
    if args.produce_sample {
        let written = produce_sample(kafka.clone(), args.input.clone()).unwrap_or_else(|e| fail(e));
        eprintln!("{PROGRAM}: wrote {written} sample lines to '{}'", args.input);
    }
    let reports = run(args, kafka).unwrap_or_else(|e| fail(e));
    let (mut lines, mut words, mut written, mut top) = (0, 0, 0, Vec::new());
    for report in reports {
        lines += report.lines;
        words += report.words;
        written += report.written;
        top.extend(report.top);
    }
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let top: Vec<String> = top.iter().take(5).map(|(word, count)| format!("{word}={count}")).collect();
    println!("{PROGRAM}: top {}", top.join(" "));
    println!("{PROGRAM}: words={words} lines={lines} written={written}");
    metrics.linger();
}
