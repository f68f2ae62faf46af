//! Client properties: the defaults our clients set (each overridable with
//! `-X key=value`) and which properties belong to which kind of client.

use std::time::Duration;

/// Default bound on metadata, admin and flush waits.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Room left for Kafka's batch and record overhead below `message.max.bytes`.
pub(super) const RECORD_OVERHEAD: usize = 1024;

/// Properties our producers set unless the user overrides them (public so
/// the benchmark baseline uses exactly the same settings).
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "5"),
    ("batch.size", "1000000"),
    ("compression.type", "none"),
    ("message.timeout.ms", "120000"),
    ("queue.buffering.max.kbytes", "65536"),
    ("allow.auto.create.topics", "false"),
];
/// Properties our consumers set unless the user overrides them.
///
/// Prefetch is bounded per partition (`queued.max.messages.kbytes`, 2 MiB,
/// plus the fetch in flight): a replay's memory grows with the partitions it
/// reads, not with the topic. librdkafka postpones the next fetch of a
/// partition whose queue is full by `fetch.queue.backoff.ms`, one second by
/// default: a replay that fell behind for a moment then idled for up to a
/// second after catching up. 2 ms keeps the fetcher right behind it
/// (measured on tansu: a 4 MiB queue with the default backoff replayed 80 MB
/// in 1.1 s instead of 0.12 s). The queue size was measured too: 32, 8 and
/// 2 MiB per partition replayed 403 MB from tansu as fast (medians of 7,
/// within the noise), with 82, 80 and 55 MiB peak RSS (80 MB: 80 and 51);
/// a replay that keeps up holds little, one that falls behind on a busy
/// machine fills every queue.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("group.id", "timely-kafka-replay"),
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("enable.partition.eof", "true"),
    ("auto.offset.reset", "error"),
    ("fetch.wait.max.ms", "5"),
    ("fetch.min.bytes", "1"),
    ("fetch.max.bytes", "16777216"),
    ("max.partition.fetch.bytes", "4194304"),
    ("queued.max.messages.kbytes", "2048"),
    ("fetch.queue.backoff.ms", "2"),
    ("allow.auto.create.topics", "false"),
];
/// Set on top of [`CONSUMER_DEFAULTS`] for the client that answers metadata
/// questions. With sparse connections (librdkafka's default) a new client's
/// first metadata request waited about 50 ms for a broker connection in
/// about half of all tries (measured against tansu on 127.0.0.1; 0 of 12
/// with this setting); the one metadata client per process may well keep a
/// connection to every broker.
///
/// Its watermarks are a read_uncommitted reader's: the high watermark, not
/// the last stable offset a read_committed ListOffsets answers (librdkafka's
/// default). A pipeline's start reads its progress topic up to the true end
/// and so notices a transaction another writer left open there, instead of
/// stopping before it at an older commit.
pub const METADATA_CLIENT_DEFAULTS: &[(&str, &str)] =
    &[("enable.sparse.connections", "false"), ("isolation.level", "read_uncommitted")];
/// Properties only one kind of client understands (librdkafka warns about the others).
pub(crate) const PRODUCER_ONLY: &[&str] = &[
    "enable.idempotence",
    "acks",
    "linger.ms",
    "batch.size",
    "compression.type",
    "message.timeout.ms",
    "request.timeout.ms",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "batch.num.messages",
    "retries",
    "retry.backoff.ms",
    "delivery.timeout.ms",
    "request.required.acks",
    "transactional.id",
];
pub(crate) const CONSUMER_ONLY: &[&str] = &[
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "auto.offset.reset",
    "fetch.wait.max.ms",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "queued.max.messages.kbytes",
    "queued.min.messages",
    "fetch.queue.backoff.ms",
    "isolation.level",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "group.instance.id",
];
