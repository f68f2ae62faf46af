//! `raw_kafka consume`: plain librdkafka consumers, in three client layouts,
//! so the replay can be compared with the best of them:
//!
//! - `per-thread`: thread j assigns the partitions p with p % M == j to its
//!   own client and polls that client's queue.
//! - `per-partition`: each partition has a client of its own; thread j polls
//!   the clients of its partitions in turn.
//! - `split`: ONE client for every partition, a queue per partition
//!   (`split_partition_queue`); thread j polls the queues of its partitions,
//!   the main thread serves the client's own queue.
//!
//! Every layout reads from offset 0 until each partition's end-of-partition
//! event. By default the payload is only counted; `--checksum` and
//! `--decode` add the per-byte work a replay must do (see `PayloadWork`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::{config, mb_per_s, partition_count, ConsumeArgs, ConsumerLayout, Result, PROGRAM};
use timely_kafka::log::kafka::{CONSUMER_DEFAULTS, METADATA_CLIENT_DEFAULTS};

/// Something to poll for records of some partitions.
enum Source {
    Client(BaseConsumer, usize),
    Queue(PartitionQueue<rdkafka::consumer::DefaultConsumerContext>),
}

impl Source {
    /// Partitions this source has left to finish.
    fn open(&self) -> usize {
        match self {
            Source::Client(_, open) => *open,
            Source::Queue(_) => 1,
        }
    }

    fn poll(&self, timeout: Duration) -> Option<KafkaResult<BorrowedMessage<'_>>> {
        match self {
            Source::Client(consumer, _) => consumer.poll(timeout),
            Source::Queue(queue) => queue.poll(timeout),
        }
    }
}

fn client(brokers: &str) -> Result<BaseConsumer> {
    config(brokers, CONSUMER_DEFAULTS).create().map_err(|e| format!("cannot create consumer: {e}"))
}

fn assign(consumer: &BaseConsumer, topic: &str, partitions: &[i32]) -> Result<()> {
    let mut assignment = TopicPartitionList::new();
    for &partition in partitions {
        assignment.add_partition_offset(topic, partition, Offset::Offset(0)).map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| format!("assign {partitions:?}: {e}"))
}

pub fn consume(args: &ConsumeArgs) -> Result<()> {
    // Timed from the start, as capture_recv is: finding the partitions is
    // part of reading a topic.
    let started = Instant::now();
    // The metadata client as timely-kafka makes it (see METADATA_CLIENT_DEFAULTS).
    let metadata: BaseConsumer = config(&args.brokers, &[CONSUMER_DEFAULTS, METADATA_CLIENT_DEFAULTS].concat())
        .create()
        .map_err(|e| format!("cannot create client: {e}"))?;
    let partitions =
        partition_count(&metadata, &args.topic)?.ok_or_else(|| format!("topic '{}' does not exist", args.topic))?;
    let idle_timeout = Duration::from_secs(args.idle_timeout);
    let mine =
        |index: u32| -> Vec<i32> { (0..partitions).filter(|p| p % args.threads == index).map(|p| p as i32).collect() };
    // The split layout's one client, served by this thread while the others read.
    let mut shared: Option<Arc<BaseConsumer>> = None;
    let mut per_thread: Vec<Vec<Source>> = Vec::new();
    for index in 0..args.threads {
        let assigned = mine(index);
        let sources = match args.layout {
            ConsumerLayout::PerThread if assigned.is_empty() => Vec::new(),
            ConsumerLayout::PerThread => {
                let consumer = client(&args.brokers)?;
                assign(&consumer, &args.topic, &assigned)?;
                vec![Source::Client(consumer, assigned.len())]
            }
            ConsumerLayout::PerPartition => assigned
                .iter()
                .map(|&p| {
                    let consumer = client(&args.brokers)?;
                    assign(&consumer, &args.topic, &[p])?;
                    Ok(Source::Client(consumer, 1))
                })
                .collect::<Result<_>>()?,
            ConsumerLayout::Split => {
                let consumer = match &shared {
                    Some(consumer) => consumer.clone(),
                    None => {
                        let consumer = Arc::new(client(&args.brokers)?);
                        assign(&consumer, &args.topic, &(0..partitions as i32).collect::<Vec<_>>())?;
                        shared = Some(consumer.clone());
                        consumer
                    }
                };
                assigned
                    .iter()
                    .map(|&p| {
                        consumer
                            .split_partition_queue(&args.topic, p)
                            .map(Source::Queue)
                            .ok_or_else(|| format!("no queue for partition {p}"))
                    })
                    .collect::<Result<_>>()?
            }
        };
        per_thread.push(sources);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = per_thread
        .into_iter()
        .map(|sources| {
            let topic = args.topic.clone();
            let work = PayloadWork::of(args);
            std::thread::spawn(move || read(&topic, sources, idle_timeout, work))
        })
        .collect();
    let server = shared.map(|consumer| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // Serves the client's events; records all go to partition queues.
                let _ = consumer.poll(Duration::from_millis(50));
            }
        })
    });
    let (mut records, mut bytes, mut first_error) = (0u64, 0u64, None);
    let mut clients = Vec::new();
    for thread in threads {
        match thread.join() {
            Ok(Ok((r, b, sources))) => {
                records += r;
                bytes += b;
                clients.push(sources);
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
    drop(clients);
    drop(metadata);
    stop.store(true, Ordering::Relaxed);
    if let Some(server) = server {
        let _ = server.join();
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    println!(
        "{PROGRAM} consume: records={records} bytes={bytes} seconds={seconds:.3} mb_per_s={:.1}",
        mb_per_s(bytes, seconds)
    );
    Ok(())
}

/// What a baseline consumer does with each payload besides counting it.
#[derive(Clone, Copy)]
enum PayloadWork {
    /// Nothing: the bytes are never read.
    Count,
    /// The CRC-32C of every payload: reads the bytes, as a replay that
    /// checks each frame must.
    Checksum,
    /// The checksum, then the bytes copied into a `Vec<u64>` and summed:
    /// the per-byte work of replaying numbers, without timely.
    Decode,
}

impl PayloadWork {
    fn of(args: &ConsumeArgs) -> Self {
        match (args.decode, args.checksum) {
            (true, _) => PayloadWork::Decode,
            (false, true) => PayloadWork::Checksum,
            (false, false) => PayloadWork::Count,
        }
    }

    /// Does this work on `payload`; returns a value the caller folds in,
    /// so the compiler cannot drop the work.
    fn apply(self, payload: &[u8]) -> u64 {
        match self {
            PayloadWork::Count => 0,
            PayloadWork::Checksum => u64::from(crc32c::crc32c(payload)),
            PayloadWork::Decode => {
                let crc = u64::from(crc32c::crc32c(payload));
                let numbers: Vec<u64> =
                    payload.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
                crc ^ std::hint::black_box(numbers).iter().fold(0u64, |a, b| a.wrapping_add(*b))
            }
        }
    }
}

/// Reads `sources` until every partition has reported its end; returns
/// (records, bytes) and the sources, so closing the clients (librdkafka's
/// close of a consumer with a group.id) is not counted in the time.
/// `work`: what else is done with every payload (see [`PayloadWork`]).
fn read(
    topic: &str,
    mut sources: Vec<Source>,
    idle_timeout: Duration,
    work: PayloadWork,
) -> Result<(u64, u64, Vec<Source>)> {
    let mut folded = 0u64;
    let mut ended = Vec::new();
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut last_progress = Instant::now();
    let mut idle_rounds = 0u32;
    while !sources.is_empty() {
        let mut progressed = false;
        let mut finished = Vec::new();
        for (index, source) in sources.iter_mut().enumerate() {
            // Without records anywhere, wait a little on each source instead of spinning.
            let wait = if idle_rounds > 0 { Duration::from_millis(1) } else { Duration::ZERO };
            let mut eof = false;
            // Drain what is there, a bounded batch at a time so no source starves.
            for _ in 0..1024 {
                match source.poll(if progressed { Duration::ZERO } else { wait }) {
                    Some(Ok(message)) => {
                        records += 1;
                        bytes += message.payload_len() as u64;
                        folded ^= work.apply(message.payload().unwrap_or_default());
                        progressed = true;
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => {
                        eof = true;
                        progressed = true;
                        break;
                    }
                    Some(Err(KafkaError::MessageConsumption(
                        code @ (RDKafkaErrorCode::OffsetOutOfRange
                        | RDKafkaErrorCode::AutoOffsetReset
                        | RDKafkaErrorCode::UnknownTopicOrPartition
                        | RDKafkaErrorCode::TopicAuthorizationFailed),
                    ))) => return Err(format!("topic '{topic}': {code}")),
                    // Transient: librdkafka retries by itself; the idle timeout bounds the wait.
                    Some(Err(_)) | None => break,
                }
            }
            if eof {
                if let Source::Client(_, open) = source {
                    *open -= 1;
                }
                if source.open() == 0 || matches!(source, Source::Queue(_)) {
                    finished.push(index);
                }
            }
        }
        for index in finished.into_iter().rev() {
            ended.push(sources.remove(index));
        }
        if progressed {
            last_progress = Instant::now();
            idle_rounds = 0;
        } else {
            idle_rounds += 1;
            if last_progress.elapsed() > idle_timeout {
                return Err(format!("topic '{topic}': no progress for {idle_timeout:?}"));
            }
        }
    }
    std::hint::black_box(folded);
    Ok((records, bytes, ended))
}
