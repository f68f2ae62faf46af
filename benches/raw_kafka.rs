//! `raw_kafka`: plain librdkafka throughput, no timely and no framing — the
//! baseline `scripts/bench_kafka.sh` compares `capture_send`/`capture_recv` to.
//!
//! ```text
//! raw_kafka produce --brokers B TOPIC --records R --size S --threads N [--overwrite | --no-create]
//! raw_kafka consume --brokers B TOPIC --threads M
//! ```
//!
//! `produce` creates TOPIC with N partitions (AdminClient); thread i sends R
//! records of S bytes to partition i with its own `BaseProducer`, serving
//! delivery reports on a full queue, and flushes at the end. Every delivery is
//! checked. `--overwrite` deletes an existing topic first; `--no-create`
//! expects the topic to exist already, empty and with at least N partitions
//! (for brokers without CreateTopics, such as librdkafka's mock cluster).
//!
//! `consume` reads every partition of TOPIC from offset 0 until end of
//! partition: thread j assigns the partitions p with p % M == j to its own
//! `BaseConsumer`.
//!
//! The client settings are the ones `timely_kafka::log::kafka` uses by default
//! (imported from it), so the difference to `capture_send`/`capture_recv` is what
//! timely, framing and encoding cost. Both commands end with one line
//! `raw_kafka produce|consume: records=<n> bytes=<b> seconds=<s> mb_per_s=<x>`
//! (bytes are payload bytes; MB = 10^6 bytes). The clock starts when the
//! clients are created (after topic creation or the metadata lookup) and stops
//! when every thread has flushed or reached the end of its partitions.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const PROGRAM: &str = "raw_kafka";

// The library's own client settings, so the difference is what timely,
// framing and encoding cost.
use timely_kafka::log::kafka::{CONSUMER_DEFAULTS, PRODUCER_DEFAULTS};

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
    /// Producer threads (= partitions).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    threads: u32,
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
    /// Fail when no record arrives for this many seconds before every partition ended.
    #[arg(long, default_value_t = 60)]
    idle_timeout: u64,
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
        Command::Produce(args) => produce(&args),
        Command::Consume(args) => consume(&args),
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

// ---------------------------------------------------------------- produce

#[derive(Default)]
struct Deliveries {
    acked: AtomicU64,
    first_error: Mutex<Option<String>>,
}

struct DeliveryContext {
    deliveries: Arc<Deliveries>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.deliveries.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                let reason = format!("delivery failed: {error} (partition {})", message.partition());
                if let Ok(mut slot) = self.deliveries.first_error.lock() {
                    slot.get_or_insert(reason);
                }
            }
        }
    }
}

impl Deliveries {
    fn check(&self) -> Result<()> {
        match self.first_error.lock().map(|e| e.clone()).unwrap_or_default() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }
}

fn produce(args: &ProduceArgs) -> Result<()> {
    prepare_topic(args)?;
    let started = Instant::now();
    let threads: Vec<_> = (0..args.threads)
        .map(|partition| {
            let (brokers, topic) = (args.brokers.clone(), args.topic.clone());
            let (records, size) = (args.records, args.size);
            std::thread::spawn(move || produce_partition(&brokers, &topic, partition as i32, records, size))
        })
        .collect();
    let mut first_error = None;
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(_) => {
                first_error.get_or_insert_with(|| "a producer thread panicked".to_string());
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(error) = first_error {
        return Err(error);
    }
    let records = args.records * args.threads as u64;
    let bytes = records * args.size as u64;
    println!(
        "{PROGRAM} produce: records={records} bytes={bytes} seconds={seconds:.3} mb_per_s={:.1}",
        mb_per_s(bytes, seconds)
    );
    Ok(())
}

fn produce_partition(brokers: &str, topic: &str, partition: i32, records: u64, size: usize) -> Result<()> {
    let deliveries = Arc::new(Deliveries::default());
    let producer: BaseProducer<DeliveryContext> = config(brokers, PRODUCER_DEFAULTS)
        .create_with_context(DeliveryContext { deliveries: deliveries.clone() })
        .map_err(|e| format!("cannot create producer: {e}"))?;
    // Incompressible-looking payload; the first 8 bytes carry the sequence number.
    let mut payload: Vec<u8> =
        (0..size).map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes()[7]).collect();
    for sequence in 0..records {
        let head = size.min(8);
        payload[..head].copy_from_slice(&sequence.to_le_bytes()[..head]);
        let mut pending = BaseRecord::<(), [u8]>::to(topic).partition(partition).payload(&payload);
        let mut waited_since: Option<Instant> = None;
        loop {
            match producer.send(pending) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    let since = *waited_since.get_or_insert_with(Instant::now);
                    producer.poll(Duration::from_millis(10));
                    deliveries.check()?;
                    if since.elapsed() > 2 * TIMEOUT {
                        return Err(format!(
                            "partition {partition}: local queue stayed full for {:?}",
                            since.elapsed()
                        ));
                    }
                    pending = returned;
                }
                Err((error, _)) => return Err(format!("partition {partition}: send: {error}")),
            }
        }
        if (sequence + 1) % 1024 == 0 {
            producer.poll(Duration::ZERO);
            deliveries.check()?;
        }
    }
    let flushed = producer.flush(TIMEOUT);
    producer.poll(Duration::ZERO);
    deliveries.check()?;
    let acked = deliveries.acked.load(Ordering::Relaxed);
    if flushed.is_err() || acked < records {
        return Err(format!("partition {partition}: {acked} of {records} records acknowledged after {TIMEOUT:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------- consume

fn consume(args: &ConsumeArgs) -> Result<()> {
    let client: BaseConsumer =
        config(&args.brokers, CONSUMER_DEFAULTS).create().map_err(|e| format!("cannot create client: {e}"))?;
    let partitions =
        partition_count(&client, &args.topic)?.ok_or_else(|| format!("topic '{}' does not exist", args.topic))?;
    drop(client);
    let idle_timeout = Duration::from_secs(args.idle_timeout);
    let started = Instant::now();
    let threads: Vec<_> = (0..args.threads)
        .map(|index| {
            let assigned: Vec<i32> = (0..partitions).filter(|p| p % args.threads == index).map(|p| p as i32).collect();
            let (brokers, topic) = (args.brokers.clone(), args.topic.clone());
            std::thread::spawn(move || consume_partitions(&brokers, &topic, &assigned, idle_timeout))
        })
        .collect();
    let (mut records, mut bytes, mut first_error) = (0u64, 0u64, None);
    for thread in threads {
        match thread.join() {
            Ok(Ok((r, b))) => {
                records += r;
                bytes += b;
            }
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(_) => {
                first_error.get_or_insert_with(|| "a consumer thread panicked".to_string());
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(error) = first_error {
        return Err(error);
    }
    println!(
        "{PROGRAM} consume: records={records} bytes={bytes} seconds={seconds:.3} mb_per_s={:.1}",
        mb_per_s(bytes, seconds)
    );
    Ok(())
}

/// Reads `partitions` from offset 0 until each has reported its end; returns (records, bytes).
fn consume_partitions(brokers: &str, topic: &str, partitions: &[i32], idle_timeout: Duration) -> Result<(u64, u64)> {
    if partitions.is_empty() {
        return Ok((0, 0));
    }
    let consumer: BaseConsumer =
        config(brokers, CONSUMER_DEFAULTS).create().map_err(|e| format!("cannot create consumer: {e}"))?;
    let mut assignment = TopicPartitionList::new();
    for &partition in partitions {
        assignment.add_partition_offset(topic, partition, Offset::Offset(0)).map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| format!("assign {partitions:?}: {e}"))?;
    let mut open: HashSet<i32> = partitions.iter().copied().collect();
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut last_progress = Instant::now();
    while !open.is_empty() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                records += 1;
                bytes += message.payload_len() as u64;
                last_progress = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                open.remove(&partition);
                last_progress = Instant::now();
            }
            Some(Err(KafkaError::MessageConsumption(
                code @ (RDKafkaErrorCode::OffsetOutOfRange
                | RDKafkaErrorCode::AutoOffsetReset
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::TopicAuthorizationFailed),
            ))) => return Err(format!("topic '{topic}' partitions {partitions:?}: {code}")),
            // Transient: librdkafka retries by itself; the idle timeout bounds the wait.
            Some(Err(_)) | None => {
                if last_progress.elapsed() > idle_timeout {
                    let mut waiting: Vec<_> = open.iter().collect();
                    waiting.sort();
                    return Err(format!("topic '{topic}': no progress for {idle_timeout:?} on partitions {waiting:?}"));
                }
            }
        }
    }
    Ok((records, bytes))
}
