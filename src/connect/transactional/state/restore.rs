//! Restoring a state at start: this worker's share of the changelog
//! partitions, read with read_committed from where the pipeline's changes
//! begin to where the last commit's end, completely or not at all.
//!
//! Worker `w` of `n` reads the changelog partitions `p` with `p % n == w`
//! (each record is read once, whatever the worker count) and keeps the
//! latest value per key; the program exchanges the entries by key, so each
//! reaches the worker that owns it now. The read ends at the offsets the
//! progress record stores (records a fenced instance left in an aborted
//! transaction are skipped by read_committed; nothing past the commit is
//! read): a timeout is an error naming the partition and the offset
//! reached, and a record that does not decode is refused naming its offset.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::super::progress::ChangelogExtent;
use super::super::transactions::crash_point;
use crate::error::{Error, Result};
use crate::log::kafka::{KafkaLog, QuickClose, PRODUCER_ONLY};

/// What one worker's restore read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreStats {
    /// Changelog records read (every change, not only the latest per key).
    pub records: u64,
    /// Their bytes (keys and values).
    pub bytes: u64,
    /// Keys restored (the latest value of each, tombstones left out).
    pub keys: u64,
    /// How long the read took.
    pub elapsed: Duration,
}

/// Reads one record (key, value) of a state's topic as an entry, or says
/// why it is not one.
pub(in super::super) type Decode<'a, K, V> = &'a dyn Fn(&[u8], &[u8]) -> std::result::Result<(K, V), String>;

/// Per key: the partition and offset of its latest change, and its value.
type Latest = HashMap<Vec<u8>, (u32, i64, Option<Vec<u8>>)>;

/// The entries of state `name` this worker (`index` of `peers`) restores,
/// each record (key, value) read as an entry by `decode`; `role` names
/// the topic in errors (its changelog, or the output that keeps it).
#[allow(clippy::too_many_arguments)]
pub(in super::super) fn restore<K, V>(
    log: &KafkaLog,
    name: &str,
    role: &str,
    extent: &ChangelogExtent,
    (index, peers): (usize, usize),
    timeout: Duration,
    crash_at: Option<&str>,
    decode: Decode<'_, K, V>,
) -> Result<(Vec<(K, V)>, RestoreStats)> {
    let began = Instant::now();
    let topic = &extent.topic;
    let mut remaining: BTreeMap<u32, (u64, u64)> = extent
        .starts
        .iter()
        .filter(|(partition, _)| **partition as usize % peers.max(1) == index)
        .map(|(&partition, &start)| (partition, (start, extent.ends.get(&partition).copied().unwrap_or(start))))
        .filter(|(_, (start, end))| start < end)
        .collect();
    let mut stats = RestoreStats::default();
    let mut latest = Latest::new();
    if !remaining.is_empty() {
        read(log, topic, &mut remaining, &mut latest, &mut stats, timeout, crash_at)?;
    }
    let mut entries = Vec::with_capacity(latest.len());
    for (key, (partition, offset, value)) in latest {
        let Some(value) = value else { continue };
        let entry = decode(&key, &value).map_err(|e| {
            Error::Config(format!(
                "{role} '{topic}' partition {partition} offset {offset}: not an entry of state '{name}' ({e}); \
                 refusing to restore a corrupt state"
            ))
        })?;
        entries.push(entry);
    }
    stats.keys = entries.len() as u64;
    stats.elapsed = began.elapsed();
    Ok((entries, stats))
}

/// Reads the `remaining` partitions (start, end) of `topic` into `latest`.
fn read(
    log: &KafkaLog,
    topic: &str,
    remaining: &mut BTreeMap<u32, (u64, u64)>,
    latest: &mut Latest,
    stats: &mut RestoreStats,
    timeout: Duration,
    crash_at: Option<&str>,
) -> Result<()> {
    let defaults = [
        ("group.id", "timely-kafka-restore"),
        ("enable.auto.commit", "false"),
        ("enable.partition.eof", "false"),
        ("auto.offset.reset", "error"),
        ("isolation.level", "read_committed"),
        ("fetch.wait.max.ms", "5"),
        ("enable.sparse.connections", "false"),
        // librdkafka postpones a partition's next fetch by 1 s (its
        // default) whenever 100,000 records wait in its queue: a restore
        // of 500,000 records per worker took 4.3 s instead of 0.5 s.
        ("fetch.queue.backoff.ms", "2"),
        ("max.partition.fetch.bytes", "4194304"),
        ("fetch.max.bytes", "16777216"),
    ];
    let consumer: QuickClose<DefaultConsumerContext> = log
        .config(&defaults, PRODUCER_ONLY)
        .create()
        .map(QuickClose::new)
        .map_err(|e| Error::kafka_from(format!("changelog topic '{topic}': cannot create consumer"), &e))?;
    let mut list = TopicPartitionList::new();
    for (&partition, &(start, _)) in remaining.iter() {
        list.add_partition_offset(topic, partition as i32, Offset::Offset(start as i64))
            .map_err(|e| Error::kafka_from(format!("changelog topic '{topic}' partition {partition}"), &e))?;
    }
    consumer.assign(&list).map_err(|e| Error::kafka_from(format!("changelog topic '{topic}': assign"), &e))?;
    let deadline = Instant::now() + timeout;
    let mut last_error = String::new();
    while !remaining.is_empty() {
        if Instant::now() >= deadline {
            let (partition, (_, end)) = remaining.iter().next().map(|(p, e)| (*p, *e)).unwrap_or_default();
            let reached = position(&consumer, topic, partition).unwrap_or(-1);
            return Err(Error::kafka(format!(
                "changelog topic '{topic}' partition {partition}: read_committed reached offset {reached} of {end} \
                 within {timeout:?}{last_error}; refusing to start from a partial state"
            )));
        }
        match consumer.poll(Duration::from_millis(10)) {
            Some(Ok(message)) => {
                let (partition, offset) = (message.partition() as u32, message.offset());
                let Some(&(_, end)) = remaining.get(&partition) else { continue };
                if offset as u64 >= end {
                    remaining.remove(&partition);
                    continue;
                }
                if stats.records == 0 {
                    crash_point(crash_at, "during-restore");
                }
                let Some(key) = message.key() else {
                    return Err(Error::Config(format!(
                        "changelog topic '{topic}' partition {partition} offset {offset}: a record without a key; \
                         refusing to restore a corrupt state"
                    )));
                };
                let value = message.payload();
                stats.records += 1;
                stats.bytes += (key.len() + value.map_or(0, <[u8]>::len)) as u64;
                latest.insert(key.to_vec(), (partition, offset, value.map(<[u8]>::to_vec)));
                if offset as u64 + 1 >= end {
                    remaining.remove(&partition);
                }
            }
            Some(Err(error)) => last_error = format!(" (last error: {error})"),
            // Idle: the partitions' last records may be transaction markers
            // or compacted away; their positions say how far they got.
            None => remaining.retain(|&partition, (_, end)| {
                position(&consumer, topic, partition).is_none_or(|position| position < *end as i64)
            }),
        }
    }
    Ok(())
}

/// The consumer's position in `partition` of `topic`, if it has one.
fn position(consumer: &BaseConsumer<DefaultConsumerContext>, topic: &str, partition: u32) -> Option<i64> {
    let list = consumer.position().ok()?;
    list.find_partition(topic, partition as i32).and_then(|entry| entry.offset().to_raw()).filter(|&o| o >= 0)
}
