//! What a source is asked to do: its configuration, where it stops, and the
//! record its logic sees.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::log::kafka::KafkaLog;
use crate::runtime::status::{load, sealed::Counted, Stats};

/// One Kafka record, as user logic sees it.
#[derive(Clone, Copy, Debug)]
pub struct SourceRecord<'a> {
    /// The record's key, if any.
    pub key: Option<&'a [u8]>,
    /// The record's value, if any (may be anything: parse it defensively).
    pub payload: Option<&'a [u8]>,
    /// Partition it came from.
    pub partition: u32,
    /// Its offset in the partition.
    pub offset: u64,
    /// Kafka timestamp (create or log-append time), milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// Ready-made timestamp choices for [`kafka_source`](super::KafkaSource::kafka_source) logic.
pub mod time {
    use super::SourceRecord;

    /// The record's Kafka timestamp rounded down to a multiple of
    /// `interval_ms` (event time in buckets). Records without a timestamp get 0.
    pub fn event_time_bucket(interval_ms: u64) -> impl Fn(&SourceRecord<'_>) -> u64 {
        let interval = interval_ms.max(1);
        move |record| {
            let ms = record.timestamp_ms.unwrap_or(0).max(0) as u64;
            ms - ms % interval
        }
    }

    /// The record's offset: each partition's records in order.
    pub fn offset(record: &SourceRecord<'_>) -> u64 {
        record.offset
    }
}

/// Where the source stops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SourceEnd {
    /// Never: follow a live topic.
    #[default]
    Live,
    /// Everything each partition holds when it is assigned, as the broker's
    /// Fetch responses report it: the partition's end is the high watermark
    /// of the first fetch response after assignment (never ListOffsets,
    /// which some brokers under-report). Every record stored before the
    /// assignment is read; records written between the assignment and that
    /// fetch may be read too; nothing at or past the end is delivered.
    CurrentEnd,
    /// An exclusive end offset per partition (partitions not named: live).
    Offsets(BTreeMap<u32, u64>),
}

/// How a [`kafka_source`](super::KafkaSource::kafka_source) reads.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// Brokers and client properties (`-X`).
    pub kafka: KafkaLog,
    /// Consumer group: share partitions with other members and commit offsets.
    pub group_id: Option<String>,
    /// Where to stop.
    pub end: SourceEnd,
    /// A partition silent this long stops holding the frontier back.
    pub idle_timeout: Duration,
    /// Records read per activation before yielding to other operators.
    pub batch: usize,
    /// Set to stop consuming: the source releases its capability, and with a
    /// group commits every finished offset before the dataflow completes.
    pub stop: Arc<AtomicBool>,
    /// The partitions this source currently reads (updated on rebalance).
    pub assigned: Arc<Mutex<Vec<u32>>>,
    /// Bound on metadata at start, and on how long the broker may stay
    /// unreachable (errors and no record) before the source fails.
    pub broker_timeout: Duration,
    /// How often an exactly-once source looks for partitions added to its
    /// topic: it fails when it finds some (they are read from the next
    /// start), rather than leave them unread while it runs.
    pub partition_check: Duration,
}

impl SourceConfig {
    /// Reads `kafka`'s brokers; explicit assignment, live, 1 s idle timeout.
    pub fn new(kafka: KafkaLog) -> Self {
        SourceConfig {
            kafka,
            group_id: None,
            end: SourceEnd::Live,
            idle_timeout: Duration::from_secs(1),
            batch: 4096,
            stop: Arc::new(AtomicBool::new(false)),
            assigned: Arc::new(Mutex::new(Vec::new())),
            broker_timeout: Duration::from_secs(30),
            partition_check: Duration::from_secs(10),
        }
    }

    /// Joins consumer group `group`.
    pub fn group(mut self, group: &str) -> Self {
        self.group_id = Some(group.to_string());
        self
    }

    /// Stops at `end`.
    pub fn end(mut self, end: SourceEnd) -> Self {
        self.end = end;
        self
    }

    /// Sets the broker timeout.
    pub fn broker_timeout(mut self, timeout: Duration) -> Self {
        self.broker_timeout = timeout;
        self
    }

    /// Sets the idle timeout.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }
}

/// What a source counts, read through its [`crate::status::Status`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Records read from the topic (those `logic` dropped included).
    pub records: u64,
}

/// The counters behind [`SourceStats`].
#[derive(Default)]
#[doc(hidden)]
pub struct SourceCounters {
    pub(crate) records: std::sync::atomic::AtomicU64,
}

impl Counted for SourceStats {
    type Counters = SourceCounters;
    fn read(c: &SourceCounters) -> Self {
        SourceStats { records: load(&c.records) }
    }
}

impl Stats for SourceStats {}
