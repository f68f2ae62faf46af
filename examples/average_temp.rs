//! `average_temp`: per-second average temperatures of the `temps` topic that
//! `temp_gen` writes, read with `kafka_source` in event time.
//!
//! ```text
//! cargo run --example average_temp -- [--brokers B] [--topic temps] [--interval-ms 1000] [-w N]
//!                                     [--group G] [--live [--idle-exit SECS]]
//!                                     [--exactly-once --output temps-averages]
//! ```
//!
//! Each record's Kafka timestamp, rounded down to `--interval-ms`, is its
//! timely time (`time::event_time_bucket`). Values like `sensor-7 21.37` are
//! parsed; anything else is counted as bad and skipped. Each worker sums its
//! records per bucket; once the frontier passes a bucket, the sums go to
//! worker 0, which prints the bucket's average and the running average:
//!
//! ```text
//! bucket=1700000001000 records=5000 average=20.213 running_records=7512 running_average=20.187
//! ```
//!
//! By default the source stops at each partition's end as of its start
//! (`SourceEnd::CurrentEnd`). `--live` follows the topic instead
//! (`SourceEnd::Live`); `--idle-exit SECS` then stops once records have
//! arrived and none has for SECS seconds (otherwise stop it with Ctrl-C;
//! make SECS longer than any pause in the input, e.g. the wait below). The
//! last line is
//!
//! ```text
//! average_temp: records=<n> average=<x> bad=<b>
//! ```
//!
//! `--exactly-once --output TOPIC` also writes each bucket, once the
//! frontier has passed it, as a record keyed by the bucket (decimal
//! milliseconds) with value `records=<n> average=<x>`, in Kafka transactions
//! with the pipeline's progress (`connect::transactional`): killed at any
//! moment and started again with the same arguments, the output topic holds
//! every bucket exactly once for read_committed readers. A bucket is a
//! time, and the commit's binding puts every record of a bucket at or after
//! its frontier past the bound offsets, so the open buckets need no state:
//! each start reads the input from the bound offsets only. The running
//! totals it prints are its declared state (`running`, one key, in the
//! changelog topic `<output>.state.running`), committed with the buckets and
//! restored at start. It needs a broker with
//! transactions (Apache Kafka), cannot be combined with `--group`, and
//! refuses other brokers in one line.
//!
//! Three ways to run it, with a broker holding topic `temps` (3 partitions):
//! librdkafka's mock cluster as below, or any Kafka (`--brokers` defaults to
//! `KAFKA_BROKERS`, then 127.0.0.1:9092; `temp_gen` creates the topic there).
//!
//! ```text
//! cargo build --examples --bins
//! target/debug/mock_broker --port 19095 --topic temps:3 & broker=$!
//! export KAFKA_BROKERS=127.0.0.1:19095 E=target/debug/examples
//! ```
//!
//! 1. One producer, one consumer: it reads every partition (with `-w N` its
//!    workers share them, worker j taking the partitions p with p % N == j)
//!    and reports every record in the topic.
//!
//!    ```text
//!    $E/temp_gen && $E/average_temp
//!    ```
//!
//! 2. One producer, three consumers without a group: each process is its own
//!    computation, reads every partition, and sees every record.
//!
//!    ```text
//!    pids=; for i in 1 2 3; do $E/average_temp --live --idle-exit 5 & pids="$pids $!"; done
//!    sleep 3; $E/temp_gen; wait $pids
//!    ```
//!
//! 3. One producer, three consumers in one consumer group: Kafka gives each
//!    member (each worker of each process) a share of the partitions, one
//!    each here, and moves them on rebalance; the shares sum to the whole.
//!    Offsets are committed only once the output frontier has passed every
//!    record before them, so a restarted member resumes where the finished
//!    output ends; a group that has already read the topic sees only newer
//!    records (use a new name to start from the beginning).
//!
//!    ```text
//!    pids=; for i in 1 2 3; do $E/average_temp --group g --live --idle-exit 5 & pids="$pids $!"; done
//!    sleep 3; $E/temp_gen; wait $pids
//!    ```
//!
//! Then `kill $broker`.

#[path = "support/properties.rs"]
mod properties;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Probe;
use timely::dataflow::{ProbeHandle, StreamVec};
use timely_kafka::connect::source::{time, KafkaSource, SourceConfig, SourceEnd, SourceRecord};
use timely_kafka::connect::transactional::{self, PipelineConfig};
use timely_kafka::execute;
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;

const PROGRAM: &str = "average_temp";
/// The declared state: the running totals (one key, `running`).
const RUNNING: &str = "running";

/// Average temperatures per event-time bucket from a Kafka topic.
#[derive(Parser, Debug)]
#[command(name = PROGRAM)]
struct Args {
    /// Kafka bootstrap brokers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// librdkafka property KEY=VALUE (repeatable), e.g. `-X security.protocol=SASL_SSL`.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = properties::parse)]
    properties: Vec<(String, String)>,
    /// Topic to read.
    #[arg(long, default_value = "temps")]
    topic: String,
    /// Event-time bucket width in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Join this consumer group: its members (processes) share the partitions.
    #[arg(long)]
    group: Option<String>,
    /// Follow the topic instead of stopping at its current end.
    #[arg(long)]
    live: bool,
    /// With --live: stop once records have arrived and none has for SECS seconds.
    #[arg(long, value_name = "SECS", requires = "live")]
    idle_exit: Option<u64>,
    /// Write each bucket's count and average to this topic (with --exactly-once).
    #[arg(long, requires = "exactly_once")]
    output: Option<String>,
    /// Write the buckets exactly once (Kafka transactions; restartable).
    #[arg(long, requires = "output", conflicts_with = "group")]
    exactly_once: bool,
    /// Timely worker threads.
    #[arg(short = 'w', long, default_value_t = 1)]
    workers: usize,
    /// --metrics-addr: serve metrics in the Prometheus text format.
    #[command(flatten)]
    metrics: timely_kafka_cli::MetricsArgs,
}

fn fail(error: impl std::fmt::Display) -> ! {
    eprintln!("{PROGRAM}: error: {error}");
    std::process::exit(1);
}

/// Temperature sum and record count.
type Sums = (f64, u64);

/// What one worker read.
#[derive(Clone, Copy, Default)]
struct Counts {
    records: u64,
    sum: f64,
    bad: u64,
}

/// The temperature in a `sensor-<n> <temperature>` payload.
fn parse_temperature(payload: Option<&[u8]>) -> Option<f64> {
    let mut words = std::str::from_utf8(payload?).ok()?.split_whitespace();
    let (_sensor, temperature) = (words.next()?, words.next()?.parse::<f64>().ok()?);
    (words.next().is_none() && temperature.is_finite()).then_some(temperature)
}

/// Fails unless `topic` exists.
fn require_topic(kafka: &KafkaLog, topic: &str) {
    match kafka.topic_info(topic) {
        Ok(Some(_)) => {}
        Ok(None) => fail(format!("topic '{topic}' does not exist")),
        Err(error) => fail(error),
    }
}

/// Adds up the sums at each time; once the input frontier has passed a time,
/// calls `complete` with it and its total and emits `(time, total)` at that time.
fn sums_per_time<'scope, P>(
    stream: StreamVec<'scope, u64, (u64, Sums)>,
    pact: P,
    name: &str,
    mut complete: impl FnMut(u64, Sums) + 'static,
) -> StreamVec<'scope, u64, (u64, Sums)>
where
    P: ParallelizationContract<u64, Vec<(u64, Sums)>>,
{
    stream.unary_frontier::<CapacityContainerBuilder<Vec<(u64, Sums)>>, _, _, _>(pact, name, |_capability, _info| {
        let mut stash = BTreeMap::new();
        move |(input, frontier), output| {
            let port = output.output_index();
            input.for_each_stamp(|capability, data| {
                let Some(capability) = capability.retain_least(port) else { return };
                let (_, total) = stash.entry(*capability.time()).or_insert_with(|| (capability, (0.0, 0)));
                for (_, (sum, count)) in data.flat_map(|d| d.drain(..)) {
                    total.0 += sum;
                    total.1 += count;
                }
            });
            while let Some(entry) = stash.first_entry() {
                if frontier.frontier().less_equal(entry.key()) {
                    break;
                }
                let (capability, total) = entry.remove();
                let time = *capability.time();
                complete(time, total);
                output.session(&capability).give((time, total));
            }
        }
    })
}

fn main() {
    let args = Args::parse();
    args.metrics.install().unwrap_or_else(|e| fail(e));
    let metrics = args.metrics.clone();
    if args.workers == 0 {
        fail("-w must be at least 1");
    }
    let kafka = KafkaLog::new(&args.brokers, &args.properties).unwrap_or_else(|e| fail(e));
    require_topic(&kafka, &args.topic);
    if let Some(output) = &args.output {
        require_topic(&kafka, output);
    }
    let config = if args.workers > 1 { timely::Config::process(args.workers) } else { timely::Config::thread() };
    // Records this process has read (all workers), for --idle-exit.
    let seen = Arc::new(AtomicU64::new(0));
    let results = execute(config, move |worker| {
        let mut config =
            SourceConfig::new(kafka.clone()).end(if args.live { SourceEnd::Live } else { SourceEnd::CurrentEnd });
        if let Some(group) = &args.group {
            config = config.group(group);
        }
        // Without a group, worker j reads the partitions p with p % peers == j;
        // one with none finishes at once.
        let (stop, assigned) = (config.stop.clone(), config.assigned.clone());
        let counts = Rc::new(RefCell::new(Counts::default()));
        let (reader, seen_by_source) = (counts.clone(), seen.clone());
        let bucket = time::event_time_bucket(args.interval_ms);
        let logic = move |record: &SourceRecord<'_>| {
            seen_by_source.fetch_add(1, Ordering::Relaxed);
            let mut counts = reader.borrow_mut();
            match parse_temperature(record.payload) {
                Some(temperature) => {
                    counts.records += 1;
                    counts.sum += temperature;
                    let time = bucket(record);
                    Some((time, (time, (temperature, 1))))
                }
                None => {
                    counts.bad += 1;
                    None
                }
            }
        };
        let pipeline = match (&args.output, args.exactly_once) {
            (Some(output), true) => {
                // One key: one changelog partition, which worker 0 restores.
                let mut config = PipelineConfig::new(kafka.clone(), &args.topic, output).state(RUNNING);
                config.state_partitions = Some(1);
                // Tests only: abort at a named point (tests/pipeline_chaos.rs).
                config.crash_at = std::env::var("TIMELY_KAFKA_CRASH_AT").ok();
                let pipeline = transactional::open(worker, &config)?;
                if worker.index() == 0 {
                    let resume = pipeline.resume();
                    eprintln!("{PROGRAM}: resuming after commit {} at frontier {}", resume.commit, resume.frontier);
                }
                let (restored, _) = pipeline.restore::<String, Sums>(worker, RUNNING)?;
                Some((pipeline, restored.into_iter().next().map_or((0.0, 0), |(_, running)| running)))
            }
            _ => None,
        };
        let resume = pipeline.as_ref().map_or(0, |(p, _)| p.resume().frontier);
        let restored = pipeline.as_ref().map_or((0.0, 0), |(_, running)| *running);
        let mut running: Sums = restored;
        let report = move |bucket: u64, (sum, count): Sums| {
            running = (running.0 + sum, running.1 + count);
            // Buckets an earlier run committed are rebuilt, not reported again.
            if bucket >= resume {
                println!(
                    "bucket={bucket} records={count} average={:.3} running_records={} running_average={:.3}",
                    sum / count as f64,
                    running.1,
                    running.0 / running.1 as f64
                );
            }
        };
        let probe = ProbeHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            let (temperatures, binding) = match &pipeline {
                Some((pipeline, _)) => {
                    let (data, binding, _) = pipeline.source(scope, config, logic);
                    (data, Some(binding))
                }
                None => (scope.kafka_source(config, &args.topic, Some(probe.clone()), logic).0, None),
            };
            let local = sums_per_time(temperatures, Pipeline, "LocalSums", |_, _| {});
            let to_first = Exchange::new(|_: &(u64, Sums)| 0);
            let averages = sums_per_time(local, to_first, "Averages", report).probe_with(&probe);
            if let (Some((pipeline, _)), Some(binding)) = (pipeline, binding) {
                let records = averages.clone().map(|(bucket, (sum, count))| {
                    (bucket.to_string(), format!("records={count} average={:.3}", sum / count as f64))
                });
                // Worker 0 completes the buckets in time order: the running
                // totals after each, as changes of the one key.
                let mut running = restored;
                let changes = averages.map(move |(_, (sum, count))| {
                    running = (running.0 + sum, running.1 + count);
                    (RUNNING.to_string(), Some(running))
                });
                let changes = pipeline.changes(RUNNING, changes)?;
                // A failure of the sink is `execute`'s error: nothing to watch here.
                let _status = pipeline.sink_with_state(records, binding, vec![changes]);
            }
            Ok::<_, timely_kafka::Error>(())
        })?;

        let (mut last_seen, mut last_change) = (0, Instant::now());
        let mut partitions = Vec::new();
        while !probe.done() {
            worker.step_or_park(Some(Duration::from_millis(5)));
            if let Ok(now) = assigned.lock() {
                if *now != partitions {
                    partitions = now.clone();
                    eprintln!("{PROGRAM}: worker {} reads partitions {partitions:?}", worker.index());
                }
            }
            if let Some(idle) = args.idle_exit {
                let now = seen.load(Ordering::Relaxed);
                if now != last_seen {
                    (last_seen, last_change) = (now, Instant::now());
                } else if now > 0 && last_change.elapsed() >= Duration::from_secs(idle) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
        // The exactly-once sink's last commit.
        while worker.step_or_park(Some(Duration::from_millis(5))) {}
        let counts = *counts.borrow();
        Ok(counts)
    })
    .unwrap_or_else(|e| fail(e));
    let mut total = Counts::default();
    for counts in results {
        total.records += counts.records;
        total.sum += counts.sum;
        total.bad += counts.bad;
    }
    let average = total.sum / total.records as f64;
    println!("{PROGRAM}: records={} average={average:.3} bad={}", total.records, total.bad);
    metrics.linger();
}
