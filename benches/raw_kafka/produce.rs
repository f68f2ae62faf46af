//! `raw_kafka produce`: plain librdkafka producers, in two client layouts.
//!
//! - `per-partition`: thread i sends its partition's records through its own
//!   client (one client per capturing worker: timely-kafka's old layout).
//! - `single`: ONE client; one thread sends every partition's records,
//!   round-robin over the partitions (what a plain application does, and
//!   the baseline the shared producer of timely-kafka is measured against).
//!
//! Every delivery is checked; both wait for every acknowledgement at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::{config, mb_per_s, prepare_topic, ProduceArgs, ProducerLayout, Result, PROGRAM, TIMEOUT};
use timely_kafka::log::kafka::PRODUCER_DEFAULTS;

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
                let reason = format!("delivery failed: {error} (partition {})", rdkafka::Message::partition(message));
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

/// A client with its delivery bookkeeping.
struct Client {
    producer: BaseProducer<DeliveryContext>,
    deliveries: Arc<Deliveries>,
    sent: u64,
}

impl Client {
    fn new(brokers: &str) -> Result<Self> {
        let deliveries = Arc::new(Deliveries::default());
        let producer = config(brokers, PRODUCER_DEFAULTS)
            .create_with_context(DeliveryContext { deliveries: deliveries.clone() })
            .map_err(|e| format!("cannot create producer: {e}"))?;
        Ok(Client { producer, deliveries, sent: 0 })
    }

    /// Sends one record, serving delivery reports while the queue is full.
    fn send(&mut self, topic: &str, partition: i32, payload: &[u8]) -> Result<()> {
        let mut pending = BaseRecord::<(), [u8]>::to(topic).partition(partition).payload(payload);
        let mut waited_since: Option<Instant> = None;
        loop {
            match self.producer.send(pending) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    let since = *waited_since.get_or_insert_with(Instant::now);
                    self.producer.poll(Duration::from_millis(10));
                    self.deliveries.check()?;
                    if since.elapsed() > 2 * TIMEOUT {
                        return Err(format!("local queue stayed full for {:?}", since.elapsed()));
                    }
                    pending = returned;
                }
                Err((error, _)) => return Err(format!("partition {partition}: send: {error}")),
            }
        }
        self.sent += 1;
        if self.sent.is_multiple_of(1024) {
            self.producer.poll(Duration::ZERO);
            self.deliveries.check()?;
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let flushed = self.producer.flush(TIMEOUT);
        self.producer.poll(Duration::ZERO);
        self.deliveries.check()?;
        let acked = self.deliveries.acked.load(Ordering::Relaxed);
        if flushed.is_err() || acked < self.sent {
            return Err(format!("{acked} of {} records acknowledged after {TIMEOUT:?}", self.sent));
        }
        Ok(())
    }
}

/// Incompressible-looking payload; the first 8 bytes carry the sequence number.
fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes()[7]).collect()
}

fn stamp(payload: &mut [u8], sequence: u64) {
    let head = payload.len().min(8);
    payload[..head].copy_from_slice(&sequence.to_le_bytes()[..head]);
}

pub fn produce(args: &ProduceArgs) -> Result<()> {
    // As capture_send does: the clients start (an idempotent producer waits
    // up to 0.5 s for its id) while the topic is prepared, then learn the
    // new topic's metadata; the clock starts after.
    let count = match args.layout {
        ProducerLayout::PerPartition => args.threads,
        ProducerLayout::Single => 1,
    };
    let clients = (0..count).map(|_| Client::new(&args.brokers)).collect::<Result<Vec<_>>>()?;
    prepare_topic(args)?;
    for client in &clients {
        let _ = client.producer.client().fetch_metadata(Some(&args.topic), TIMEOUT);
    }
    let started = Instant::now();
    match args.layout {
        ProducerLayout::PerPartition => per_partition(args, clients)?,
        ProducerLayout::Single => single(args, clients)?,
    }
    let seconds = started.elapsed().as_secs_f64();
    let records = args.records * args.threads as u64;
    let bytes = records * args.size as u64;
    println!(
        "{PROGRAM} produce: records={records} bytes={bytes} seconds={seconds:.3} mb_per_s={:.1}",
        mb_per_s(bytes, seconds)
    );
    Ok(())
}

fn per_partition(args: &ProduceArgs, clients: Vec<Client>) -> Result<()> {
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(partition, mut client)| {
            let topic = args.topic.clone();
            let (records, size) = (args.records, args.size);
            std::thread::spawn(move || -> Result<()> {
                let mut payload = payload(size);
                for sequence in 0..records {
                    stamp(&mut payload, sequence);
                    client.send(&topic, partition as i32, &payload)?;
                }
                client.finish().map_err(|e| format!("partition {partition}: {e}"))
            })
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
    first_error.map_or(Ok(()), Err)
}

fn single(args: &ProduceArgs, clients: Vec<Client>) -> Result<()> {
    let mut client = clients.into_iter().next().ok_or("no client")?;
    let mut payload = payload(args.size);
    for sequence in 0..args.records {
        stamp(&mut payload, sequence);
        for partition in 0..args.threads {
            client.send(&args.topic, partition as i32, &payload)?;
        }
    }
    client.finish()
}
