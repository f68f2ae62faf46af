//! `raw_kafka`: plain librdkafka throughput, no timely and no framing — the
//! baseline `scripts/bench_kafka.sh` compares `capture_send`/`capture_recv` to.
//!
//! ```text
//! raw_kafka produce --brokers B TOPIC --records R --size S --threads N [--layout L] [--overwrite | --no-create]
//! raw_kafka consume --brokers B TOPIC --threads M [--layout L]
//! ```
//!
//! `produce` creates TOPIC with N partitions (AdminClient) and sends R
//! records of S bytes to each partition, serving delivery reports on a full
//! queue, and flushes at the end. Every delivery is checked. `--layout
//! single` (the default) sends everything through ONE client from one thread;
//! `--layout per-partition` gives each partition a thread and a client of its
//! own (see `raw_kafka/produce.rs`). `--overwrite` deletes an existing topic
//! first; `--no-create` expects the topic to exist already, empty and with at
//! least N partitions (for brokers without CreateTopics, such as librdkafka's
//! mock cluster).
//!
//! `consume` reads every partition of TOPIC from offset 0 until end of
//! partition with M threads, in one of three client layouts (`--layout`, see
//! `raw_kafka/consume.rs`): `per-thread` (thread j assigns the partitions p
//! with p % M == j to its own client), `per-partition` (a client per
//! partition), `split` (one client, a queue per partition).
//!
//! The client settings are the ones `timely_kafka::log::kafka` uses by default
//! (imported from it), so the difference to `capture_send`/`capture_recv` is what
//! timely, framing and encoding cost. Both commands end with one line
//! `raw_kafka produce|consume: records=<n> bytes=<b> seconds=<s> mb_per_s=<x>`
//! (bytes are payload bytes; MB = 10^6 bytes). The clock starts when the
//! clients are created (after topic creation or the metadata lookup) and stops
//! when every thread has flushed or reached the end of its partitions.

#[path = "raw_kafka/consume.rs"]
mod consume;
#[path = "raw_kafka/produce.rs"]
mod produce;

use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

const PROGRAM: &str = "raw_kafka";

// The library's own client settings, so the difference is what timely,
// framing and encoding cost.
use timely_kafka::log::kafka::CONSUMER_DEFAULTS;

// capture_recv's allocator settings.
use timely_kafka_cli as memory;

/// Bound on metadata, admin and flush waits (as the library's default).
const TIMEOUT: Duration = Duration::from_secs(30);

type Result<T> = std::result::Result<T, String>;

/// Plain librdkafka produce/consume throughput with timely-kafka's client settings.
#[derive(Parser, Debug)]
#[command(name = PROGRAM)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Each thread produces RECORDS records of SIZE bytes to its own partition.
    Produce(ProduceArgs),
    /// Read every partition of the topic from offset 0 to its end.
    Consume(ConsumeArgs),
}

#[derive(Args, Debug)]
struct ProduceArgs {
    /// Kafka bootstrap servers (host:port[,...]).
    #[arg(long, env = "KAFKA_BROKERS")]
    brokers: String,
    /// Topic to produce to (created with one partition per thread).
    topic: String,
    /// Records per thread.
    #[arg(long)]
    records: u64,
    /// Payload bytes per record.
    #[arg(long)]
    size: usize,
    /// Partitions (one producer thread each with `--layout per-partition`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    threads: u32,
    /// Client layout.
    #[arg(long, value_enum, default_value_t = ProducerLayout::Single)]
    layout: ProducerLayout,
    /// Delete the topic first if it exists.
    #[arg(long, conflicts_with = "no_create")]
    overwrite: bool,
    /// Do not create the topic: it must exist, be empty and have enough partitions.
    #[arg(long)]
    no_create: bool,
}

#[derive(Args, Debug)]
struct ConsumeArgs {
    /// Kafka bootstrap servers (host:port[,...]).
    #[arg(long, env = "KAFKA_BROKERS")]
    brokers: String,
    /// Topic to read.
    topic: String,
    /// Consumer threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    threads: u32,
    /// Client layout.
    #[arg(long, value_enum, default_value_t = ConsumerLayout::PerThread)]
    layout: ConsumerLayout,
    /// Fail when no record arrives for this many seconds before every partition ended.
    #[arg(long, default_value_t = 60)]
    idle_timeout: u64,
    /// Also compute the CRC-32C of every record's payload: a consumer that
    /// reads the bytes, as a replay (which checks each frame) must.
    #[arg(long)]
    checksum: bool,
    /// Also decode every payload as a replay of numbers must: checksum it,
    /// copy its bytes into a `Vec<u64>` and sum them (implies --checksum).
    #[arg(long)]
    decode: bool,
}

/// Producer clients.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProducerLayout {
    /// One client, one thread, every partition.
    Single,
    /// A thread and a client per partition.
    PerPartition,
}

/// Consumer clients.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ConsumerLayout {
    /// A client per thread, for the partitions p with p % threads == thread.
    PerThread,
    /// A client per partition, threads polling theirs.
    PerPartition,
    /// One client, a queue per partition (split_partition_queue).
    Split,
}

fn main() {
    // `cargo bench` runs every bench target with just `--bench`: this one
    // is a baseline program with its own arguments, driven by a script.
    if std::env::args().skip(1).eq(["--bench"]) {
        println!("raw_kafka: a baseline driven by scripts/bench_kafka.sh; run that script");
        return;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Produce(args) => produce::produce(&args),
        Command::Consume(args) => {
            // The allocator settings capture_recv runs with (no effect
            // measured here: the raw consumer allocates nothing per record).
            memory::keep_freed_memory();
            consume::consume(&args)
        }
    };
    if let Err(error) = result {
        eprintln!("{PROGRAM}: error: {error}");
        std::process::exit(1);
    }
}

fn config(brokers: &str, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    config
}

fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / 1e6 / seconds
    } else {
        0.0
    }
}

// ---------------------------------------------------------------- topics

/// Partition count of `topic`, or `None` if the broker does not know it.
fn partition_count(client: &BaseConsumer, topic: &str) -> Result<Option<u32>> {
    let metadata =
        client.fetch_metadata(Some(topic), TIMEOUT).map_err(|e| format!("metadata for topic '{topic}': {e}"))?;
    let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else { return Ok(None) };
    match entry.error() {
        None => Ok(Some(entry.partitions().len() as u32)),
        Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => Ok(None),
        Some(error) => Err(format!("topic '{topic}': {}", RDKafkaErrorCode::from(error))),
    }
}

/// Polls metadata until `ready` holds for the partition count.
fn wait_for(client: &BaseConsumer, topic: &str, what: &str, ready: impl Fn(Option<u32>) -> bool) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if ready(partition_count(client, topic)?) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("topic '{topic}' did not {what} within {TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn has_data(client: &BaseConsumer, topic: &str, partitions: u32) -> Result<bool> {
    for partition in 0..partitions {
        let (low, high) = client
            .fetch_watermarks(topic, partition as i32, TIMEOUT)
            .map_err(|e| format!("watermarks of topic '{topic}' partition {partition}: {e}"))?;
        if high > low {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Makes sure `topic` exists, empty, with `partitions` partitions.
fn prepare_topic(args: &ProduceArgs) -> Result<()> {
    let (topic, partitions) = (args.topic.as_str(), args.threads);
    let client: BaseConsumer =
        config(&args.brokers, CONSUMER_DEFAULTS).create().map_err(|e| format!("cannot create client: {e}"))?;
    let existing = partition_count(&client, topic)?;
    if args.no_create {
        return match existing {
            None => Err(format!("topic '{topic}' does not exist (--no-create)")),
            Some(n) if n < partitions => Err(format!("topic '{topic}' has {n} partitions, {partitions} needed")),
            Some(n) if has_data(&client, topic, n)? => Err(format!("topic '{topic}' is not empty (--no-create)")),
            Some(_) => Ok(()),
        };
    }
    let admin: AdminClient<DefaultClientContext> =
        config(&args.brokers, &[]).create().map_err(|e| format!("cannot create admin client: {e}"))?;
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    if existing.is_some() {
        if !args.overwrite {
            return Err(format!("topic '{topic}' exists (use --overwrite to replace it)"));
        }
        let results = futures_executor::block_on(admin.delete_topics(&[topic], &options))
            .map_err(|e| format!("delete topic '{topic}': {e}"))?;
        for result in results {
            result.map_err(|(name, code)| format!("delete topic '{name}': {code}"))?;
        }
        wait_for(&client, topic, "disappear", |count| count.is_none())?;
    }
    let new_topic = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(-1));
    let results = futures_executor::block_on(admin.create_topics(&[new_topic], &options))
        .map_err(|e| format!("create topic '{topic}' with {partitions} partitions: {e}"))?;
    for result in results {
        result.map_err(|(name, code)| format!("create topic '{name}' with {partitions} partitions: {code}"))?;
    }
    wait_for(&client, topic, &format!("appear with {partitions} partitions"), |count| {
        count.is_some_and(|n| n >= partitions)
    })
}
