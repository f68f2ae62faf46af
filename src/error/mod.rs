//! One error type for the whole crate.
//!
//! Every variant renders as a single line that names where the problem is
//! (topic, partition, offset) and why, because these messages end up as the
//! last line a user sees from `capture_send` / `capture_recv`.

mod codes;

use std::path::PathBuf;

pub(crate) use codes::{ends_a_consumer, transient_code, undecodable};

/// librdkafka's error codes, as rust-rdkafka names them.
pub use rdkafka::error::RDKafkaErrorCode as KafkaErrorCode;

/// Where a record lives, in Kafka's word (a topic and one of its
/// partitions): the coordinates a user needs to find it again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index within the topic.
    pub partition: u32,
}

impl TopicPartition {
    /// Names partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "topic '{}' partition {}", self.topic, self.partition)
    }
}

/// Why a byte string is not a valid frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
/// (and by any thread) and still be returned by [`crate::runtime::execute`].
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
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
    #[error("topic '{0}' already holds data; set the capture's `overwrite` option to replace it")]
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
    Locked(TopicPartition, PathBuf),
    /// A record failed its log-level checks.
    #[error("{at} offset {offset}: corrupt record: {reason}")]
    Corrupt {
        /// Partition holding the record.
        at: TopicPartition,
        /// Offset of the record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A record is not a valid frame for this stream.
    #[error("{at} offset {offset}: {source}")]
    Frame {
        /// Partition holding the record.
        at: TopicPartition,
        /// Offset of the record.
        offset: u64,
        /// What is wrong with it.
        source: FrameError,
    },
    /// The stream breaks the capture protocol (missing header, gap, mixed sessions...).
    #[error("{at} offset {offset}: {reason}")]
    Protocol {
        /// Partition holding the record.
        at: TopicPartition,
        /// Offset of the record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The stream went idle before its frontier became empty.
    #[error(
        "{at}: stream incomplete: no new record for {idle_secs}s after offset {}, frontier still {frontier}",
        .last_offset.map_or_else(|| "none (partition empty)".to_string(), |offset| offset.to_string())
    )]
    Incomplete {
        /// Partition of the stream.
        at: TopicPartition,
        /// The last offset read; `None`: the partition was empty.
        last_offset: Option<u64>,
        /// The frontier reached (Debug rendering).
        frontier: String,
        /// How long it was idle.
        idle_secs: u64,
    },
    /// Writing to the log failed.
    #[error("{at}: write failed: {reason}")]
    Write {
        /// Partition written.
        at: TopicPartition,
        /// Cause.
        reason: String,
    },
    /// An exactly-once stream asked to resume is already complete.
    #[error("cannot resume {0}: the stream is complete (its final commit is stored); nothing to resume")]
    AlreadyComplete(TopicPartition),
    /// An error from librdkafka or a broker. `code` is librdkafka's error
    /// code when there is one: [`Error::kafka_error_code`] and
    /// [`Error::is_retriable`] read it. The message is one line and already
    /// names the cause; `source()` returns rust-rdkafka's error itself when
    /// there was one, for a program that matches on it.
    #[error("kafka: {message}")]
    Kafka {
        /// What failed, naming topic and partition where there is one.
        message: String,
        /// librdkafka's code for the failure, if it had one.
        code: Option<KafkaErrorCode>,
        /// rust-rdkafka's error, if the failure was one.
        #[source]
        cause: Option<rdkafka::error::KafkaError>,
    },
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
    pub(crate) fn frame_at(at: &TopicPartition, offset: u64) -> impl Fn(FrameError) -> Error + '_ {
        move |source| Error::Frame { at: at.clone(), offset, source }
    }

    /// A Kafka error without a librdkafka code (a timeout of ours, a
    /// refusal, a record that does not decode).
    pub(crate) fn kafka(message: impl Into<String>) -> Self {
        Error::Kafka { message: message.into(), code: None, cause: None }
    }

    /// A Kafka error carrying librdkafka's `code`.
    pub(crate) fn kafka_code(message: impl Into<String>, code: KafkaErrorCode) -> Self {
        Error::Kafka { message: message.into(), code: Some(code), cause: None }
    }

    /// `context: error`, keeping rust-rdkafka's error (as the source) and
    /// librdkafka's code when `error`, or an error in its chain of sources,
    /// is a [`rdkafka::error::KafkaError`].
    pub(crate) fn kafka_from(context: impl std::fmt::Display, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut next = Some(error);
        let mut cause = None;
        while let Some(error) = next {
            if let Some(kafka) = error.downcast_ref::<rdkafka::error::KafkaError>() {
                cause = Some(kafka.clone());
                break;
            }
            next = error.source();
        }
        let code = cause.as_ref().and_then(|kafka| kafka.rdkafka_error_code());
        Error::Kafka { message: format!("{context}: {error}"), code, cause }
    }

    /// The same error with `context: ` before its message (a Kafka error
    /// keeps its code and cause).
    pub(crate) fn within(self, context: &str) -> Self {
        match self {
            Error::Kafka { message, code, cause } => {
                Error::Kafka { message: format!("{context}: {message}"), code, cause }
            }
            other => Error::kafka(format!("{context}: {other}")),
        }
    }

    /// librdkafka's code, for a Kafka error that has one.
    pub fn kafka_error_code(&self) -> Option<KafkaErrorCode> {
        match self {
            Error::Kafka { code, .. } => *code,
            _ => None,
        }
    }

    /// Whether trying the same thing again later can succeed: a broker that
    /// was unreachable, a leader that moved, a timeout, or a stream that
    /// was incomplete when the replay gave up. Corruption, refusals and
    /// configuration errors are not.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Incomplete { .. } => true,
            Error::Kafka { code: Some(code), .. } => transient_code(*code),
            _ => false,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source: std::sync::Arc::new(source) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kafka_error_keeps_librdkafkas_code_and_its_class() {
        let cause = rdkafka::error::KafkaError::MetadataFetch(KafkaErrorCode::BrokerTransportFailure);
        let error = Error::kafka_from("topic 't'", &cause);
        assert_eq!(error.kafka_error_code(), Some(KafkaErrorCode::BrokerTransportFailure));
        assert!(error.is_retriable(), "{error}");
        assert!(error.to_string().starts_with("kafka: topic 't': "), "{error}");

        let refused = Error::kafka_code("topic 't'", KafkaErrorCode::TopicAuthorizationFailed);
        assert!(!refused.is_retriable());
        let source = std::error::Error::source(&error).expect("rdkafka's error is the source");
        assert_eq!(source.downcast_ref::<rdkafka::error::KafkaError>(), Some(&cause));

        let not_kafka = Error::kafka_from("thread", &std::io::Error::other("no"));
        assert!(std::error::Error::source(&not_kafka).is_none());
        assert_eq!(not_kafka.kafka_error_code(), None);
        assert!(!Error::Config("x".into()).is_retriable());
    }

    #[test]
    fn an_incomplete_stream_names_its_last_offset_or_an_empty_partition() {
        let at = TopicPartition::new("t", 2);
        let incomplete =
            |last_offset| Error::Incomplete { at: at.clone(), last_offset, frontier: "[3]".into(), idle_secs: 5 };
        assert_eq!(
            incomplete(Some(41)).to_string(),
            "topic 't' partition 2: stream incomplete: no new record for 5s after offset 41, frontier still [3]"
        );
        assert!(incomplete(None).to_string().contains("after offset none (partition empty)"));
        assert!(incomplete(None).is_retriable());
    }
}
