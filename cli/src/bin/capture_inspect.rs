//! `capture_inspect TOPIC`: one line per partition saying what it holds
//! (sessions, events, offsets, completeness, frontier, foreign records)
//! and where it ends, without replaying it.
//!
//! Lag without the program that reads: given a consumer's position
//! (`--position P=OFFSET`, per partition) each line adds the position and
//! the lag (end offset − position); given a pipeline's progress topic
//! (`--progress-topic`, Kafka), TOPIC is the pipeline's input (plain
//! records, not inspected) and each line says how far the last commit
//! got and what is left. `--json` prints one JSON object per partition.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use timely_kafka::connect::transactional::ProgressRecord;
use timely_kafka::inspect::inspect_topic;
use timely_kafka::log::LogBackend;
use timely_kafka::{Error, Result};
use timely_kafka_cli::LogArgs;

const PROGRAM: &str = "capture_inspect";

/// Show what each partition of a captured topic holds, where it ends, and
/// how far a reader of it lags.
#[derive(Parser, Debug)]
#[command(name = PROGRAM, version)]
struct Args {
    /// Topic to inspect.
    topic: String,
    /// Bound of each read, in seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// A consumer's position in partition P (the next offset it reads),
    /// repeatable: adds `position` and `lag` (end offset − position).
    #[arg(long, value_name = "P=OFFSET", value_parser = parse_position)]
    position: Vec<(u32, u64)>,
    /// A pipeline's progress topic (Kafka): TOPIC is its input; prints per
    /// partition the end offset, the offset its last commit reached, and
    /// the lag, without inspecting the input's records.
    #[arg(long, value_name = "TOPIC", conflicts_with = "position")]
    progress_topic: Option<String>,
    /// Print one JSON object per partition instead of key=value lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    log: LogArgs,
}

fn parse_position(text: &str) -> std::result::Result<(u32, u64), String> {
    let parsed = text.split_once('=').and_then(|(p, o)| Some((p.trim().parse().ok()?, o.trim().parse().ok()?)));
    parsed.ok_or_else(|| format!("expected PARTITION=OFFSET, got '{text}'"))
}

fn main() {
    let args = Args::parse();
    timely_kafka_cli::run_or_fail(PROGRAM, || run(args));
}

/// One output line: (key, value) pairs.
type Line = Vec<(&'static str, String)>;

fn run(args: Args) -> Result<()> {
    let log = args.log.open()?;
    let timeout = Duration::from_secs(args.timeout);
    let lines = match &args.progress_topic {
        Some(progress) => pipeline_lag(&args, log.as_ref(), progress, timeout)?,
        None => {
            let positions: BTreeMap<u32, u64> = args.position.iter().copied().collect();
            let mut lines = Vec::new();
            for summary in inspect_topic(log.as_ref(), &args.topic, timeout)? {
                let mut line = summary.fields();
                let end = log.reader(&args.topic, summary.partition, 0)?.end_offset()?;
                line.push(("end_offset", end.to_string()));
                if let Some(position) = positions.get(&summary.partition) {
                    line.push(("position", position.to_string()));
                    line.push(("lag", end.saturating_sub(*position).to_string()));
                }
                lines.push(line);
            }
            lines
        }
    };
    for line in lines {
        println!("{}", if args.json { json(&line) } else { text(&line) });
    }
    Ok(())
}

/// Per partition of the pipeline's input: end offset, committed offset, lag.
fn pipeline_lag(args: &Args, log: &dyn LogBackend, progress_topic: &str, timeout: Duration) -> Result<Vec<Line>> {
    let brokers = args
        .log
        .brokers
        .as_deref()
        .ok_or_else(|| Error::Config("--progress-topic needs Kafka (--brokers or KAFKA_BROKERS)".into()))?;
    let info = log.topic_info(&args.topic)?.ok_or_else(|| Error::MissingTopic(args.topic.clone()))?;
    let progress = last_commit(brokers, progress_topic, &args.topic, timeout)?;
    let mut lines = Vec::new();
    for partition in 0..info.partitions {
        let end = log.reader(&args.topic, partition, 0)?.end_offset()?;
        let committed = progress.as_ref().and_then(|p| p.offsets.get(&partition).or(p.starts.get(&partition)));
        let mut line: Line = vec![("partition", partition.to_string()), ("end_offset", end.to_string())];
        match committed {
            Some(offset) => {
                line.push(("committed_offset", offset.to_string()));
                line.push(("lag", end.saturating_sub(*offset).to_string()));
            }
            None => {
                line.push(("committed_offset", "none".into()));
                line.push(("lag", end.to_string()));
            }
        }
        if let Some(progress) = &progress {
            line.push(("commit", progress.commit.to_string()));
            line.push(("committed_frontier", progress.frontier.to_string()));
        }
        lines.push(line);
    }
    Ok(lines)
}

/// The newest committed progress record of a pipeline reading `input`.
fn last_commit(brokers: &str, progress_topic: &str, input: &str, timeout: Duration) -> Result<Option<ProgressRecord>> {
    let kafka = |e: rdkafka::error::KafkaError| Error::Config(format!("progress topic '{progress_topic}': {e}"));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "capture_inspect")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(kafka)?;
    let (_, high) = consumer.fetch_watermarks(progress_topic, 0, timeout).map_err(kafka)?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(progress_topic, 0, Offset::Beginning).map_err(kafka)?;
    consumer.assign(&assignment).map_err(kafka)?;
    let deadline = std::time::Instant::now() + timeout;
    let mut last = None;
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                if let Some(progress) = message.payload().and_then(|p| serde_json::from_slice::<ProgressRecord>(p).ok())
                {
                    if progress.input == input {
                        last = Some(progress);
                    }
                }
                if message.offset() + 1 >= high {
                    break;
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            Some(Err(error)) => return Err(kafka(error)),
            None => {}
        }
    }
    Ok(last)
}

fn text(line: &Line) -> String {
    line.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(" ")
}

/// A JSON object; numbers and booleans unquoted.
fn json(line: &Line) -> String {
    let mut object = serde_json::Map::new();
    for (key, value) in line {
        let value = match value.as_str() {
            "true" => serde_json::Value::Bool(true),
            "false" => serde_json::Value::Bool(false),
            "none" => serde_json::Value::Null,
            v => v.parse::<u64>().map_or_else(|_| serde_json::Value::String(v.into()), serde_json::Value::from),
        };
        object.insert(key.to_string(), value);
    }
    serde_json::Value::Object(object).to_string()
}
