//! One error type for the whole crate.
//!
//! Every variant renders as a single line that names where the problem is
//! (topic, partition, offset) and why, because these messages end up as the
//! last line a user sees from `capture_send` / `capture_recv`.

use std::path::PathBuf;

/// Where a record lives: the coordinates a user needs to find it again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionId {
    /// Topic name.
    pub topic: String,
    /// Partition index within the topic.
    pub partition: u32,
}

impl PartitionId {
    /// Names partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        PartitionId { topic: topic.into(), partition }
    }
}

impl std::fmt::Display for PartitionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "topic '{}' partition {}", self.topic, self.partition)
    }
}

/// Why a byte string is not a valid frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than a frame header.
    #[error("frame is {0} bytes, shorter than the {1}-byte header")]
    TooShort(usize, usize),
    /// The magic bytes do not match: not a timely-kafka record.
    #[error("not a timely-kafka frame (starts {0:02x?}, not \"TK\"): written by another program?")]
    BadMagic([u8; 2]),
    /// A format version this build does not understand.
    #[error("unsupported frame format version {0}")]
    UnsupportedVersion(u8),
    /// Unknown frame kind byte.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Unknown codec byte.
    #[error("unknown codec id {0}")]
    UnknownCodec(u8),
    /// The header's payload length disagrees with the bytes present.
    #[error("payload length {declared} in header but {actual} bytes present")]
    LengthMismatch {
        /// Length the header declares.
        declared: usize,
        /// Length actually present.
        actual: usize,
    },
    /// The checksum does not match.
    #[error("checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// CRC32C stored in the header.
        stored: u32,
        /// CRC32C computed over the bytes.
        computed: u32,
    },
    /// The frame was written with another codec than the reader expects.
    #[error("frame uses codec '{found}' but the reader expects '{expected}'")]
    CodecMismatch {
        /// Codec the reader was configured with.
        expected: &'static str,
        /// Codec named by the frame.
        found: &'static str,
    },
    /// The payload did not decode as the expected type.
    #[error("payload does not decode: {0}")]
    Decode(String),
    /// A chunked event was not reassembled correctly.
    #[error("bad chunk sequence: {0}")]
    Chunk(String),
}

/// Errors of the partition log and of capture / replay on top of it.
///
/// `Clone`, so a failure recorded in a handle can be read any number of times
/// (and by any thread) and still be returned by [`crate::capture::worker::execute`].
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a file-log path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error (shared: `std::io::Error` is not `Clone`).
        source: std::sync::Arc<std::io::Error>,
    },
    /// The topic does not exist.
    #[error("topic '{0}' does not exist")]
    MissingTopic(String),
    /// The topic holds data and overwriting was not requested.
    #[error("topic '{0}' already holds data; pass --overwrite to replace it")]
    TopicNotEmpty(String),
    /// The topic has fewer partitions than the streams asked for.
    #[error("topic '{topic}' has {actual} partitions but {wanted} are needed")]
    TooFewPartitions {
        /// Topic name.
        topic: String,
        /// Partitions present.
        actual: u32,
        /// Partitions required.
        wanted: u32,
    },
    /// Another writer holds the partition.
    #[error("{0}: another writer holds this partition (lock {1})")]
    Locked(PartitionId, PathBuf),
    /// A record failed its log-level checks.
    #[error("{at} offset {offset}: corrupt record: {reason}")]
    Corrupt {
        /// Partition holding the record.
        at: PartitionId,
        /// Offset of the record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A record is not a valid frame for this stream.
    #[error("{at} offset {offset}: {source}")]
    Frame {
        /// Partition holding the record.
        at: PartitionId,
        /// Offset of the record.
        offset: u64,
        /// What is wrong with it.
        source: FrameError,
    },
    /// The stream breaks the capture protocol (missing header, gap, mixed sessions...).
    #[error("{at} offset {offset}: {reason}")]
    Protocol {
        /// Partition holding the record.
        at: PartitionId,
        /// Offset of the record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The stream went idle before its frontier became empty.
    #[error(
        "{at}: stream incomplete: no new record for {idle_secs}s after offset {last_offset}, frontier still {frontier}"
    )]
    Incomplete {
        /// Partition of the stream.
        at: PartitionId,
        /// The last offset read, if any.
        last_offset: String,
        /// The frontier reached (Debug rendering).
        frontier: String,
        /// How long it was idle.
        idle_secs: u64,
    },
    /// Writing to the log failed.
    #[error("{at}: write failed: {reason}")]
    Write {
        /// Partition written.
        at: PartitionId,
        /// Cause.
        reason: String,
    },
    /// An exactly-once stream asked to resume is already complete.
    #[error("cannot resume {0}: the stream is complete (its final commit is stored); nothing to resume")]
    AlreadyComplete(PartitionId),
    /// A Kafka client or broker error.
    #[error("kafka: {0}")]
    Kafka(String),
    /// Invalid configuration.
    #[error("{0}")]
    Config(String),
    /// A capture or replay failed in another worker or process; the message
    /// is all that travelled.
    #[error("{0}")]
    Dataflow(String),
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The conversion every frame check of record `offset` of `at` uses.
    pub(crate) fn frame_at(at: &PartitionId, offset: u64) -> impl Fn(FrameError) -> Error + '_ {
        move |source| Error::Frame { at: at.clone(), offset, source }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source: std::sync::Arc::new(source) }
    }
}
