//! The progress record and reading it back completely.
//!
//! Each transaction ends with one progress record in a one-partition
//! progress topic, keyed by the writer's transactional id. A restart reads
//! it back only after fencing (so no transaction of an earlier instance can
//! still commit), and reads it *to its end*: the true high watermark first,
//! then every committed record up to it (read_committed), in windows from
//! the end backwards until one holds the writer's record, so a restart
//! reads the last few commits, not every commit the pipeline ever made. A
//! read that cannot get to the end in time is an error, never "the latest
//! record I saw": a stale progress record would restart from an older
//! commit and write its outputs twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, DefaultConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::log::kafka::{KafkaLog, QuickClose, PRODUCER_ONLY};

/// The progress record's format version.
pub const PROGRESS_FORMAT: u32 = 1;

/// What one commit made durable, written last in its transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressRecord {
    /// [`PROGRESS_FORMAT`].
    pub format: u32,
    /// The transactional id of the writer (the pipeline's identity).
    pub writer: String,
    /// How many commits this pipeline has made, this one included.
    pub commit: u64,
    /// Every output at a time before this one is committed; none after.
    pub frontier: u64,
    /// The source topic.
    pub input: String,
    /// The source topic's id (KIP-516) when the broker gives one: a topic
    /// deleted and created again under the same name has another. (Always
    /// serialized: workers exchange this record with bincode, which has no
    /// field names; `default` reads records written before it.)
    #[serde(default)]
    pub input_id: Option<String>,
    /// Per source partition, the offset bound to `frontier`.
    pub offsets: BTreeMap<u32, u64>,
    /// Per source partition, where the pipeline's input begins.
    pub starts: BTreeMap<u32, u64>,
    /// Per declared state (by name), its changelog's extent at this commit
    /// (see `state/`). Empty for a pipeline that declares no state.
    #[serde(default)]
    pub states: BTreeMap<String, ChangelogExtent>,
}

/// Where a state's changelog holds the state at a commit: per changelog
/// partition, the records from `starts` (the changelog's end when the
/// pipeline first used it) to `ends` (one past the last record this
/// pipeline delivered to it up to the commit) are the committed changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangelogExtent {
    /// The changelog topic.
    pub topic: String,
    /// Its topic id (KIP-516) when the broker gives one: a changelog
    /// deleted and created again has another.
    #[serde(default)]
    pub topic_id: Option<String>,
    /// Per changelog partition, the first offset of this pipeline's changes.
    pub starts: BTreeMap<u32, u64>,
    /// Per changelog partition, one past the last change delivered.
    pub ends: BTreeMap<u32, u64>,
}

/// The key of the aborted probe record every start writes (see
/// `transactions/start.rs`): a read_committed reader must never see it.
pub(super) fn probe_key(writer: &str) -> String {
    format!("{writer}.abort-probe")
}

/// The last committed progress record of `writer` in `topic` (partition 0),
/// and whether an aborted probe record was visible to read_committed.
pub(super) fn read_progress(
    log: &KafkaLog,
    topic: &str,
    writer: &str,
    timeout: Duration,
) -> Result<(Option<ProgressRecord>, bool)> {
    let consumer = |isolation: &str| -> Result<QuickClose<DefaultConsumerContext>> {
        let defaults = [
            ("group.id", "timely-kafka-progress"),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
            ("auto.offset.reset", "error"),
            ("fetch.wait.max.ms", "10"),
            ("isolation.level", isolation),
            // A connection at once, not at the first request (~50 ms).
            ("enable.sparse.connections", "false"),
        ];
        log.config(&defaults, PRODUCER_ONLY)
            .create()
            .map(QuickClose::new)
            .map_err(|e| Error::kafka_from(format!("progress topic '{topic}': cannot create consumer"), &e))
    };
    let (low, high) = log.watermarks(topic, 0)?;
    let (low, high) = (low as i64, high as i64);
    if high <= low {
        return Ok((None, false));
    }
    let committed = consumer("read_committed")?;
    let deadline = Instant::now() + timeout;
    let mut probe_seen = false;
    // Windows from the end backwards: the newest window that holds a
    // committed record of `writer` holds its last one.
    let (mut end, mut window) = (high, FIRST_WINDOW);
    loop {
        let start = end.saturating_sub(window).max(low);
        let read = read_window(&committed, topic, writer, (start, end), deadline, timeout)?;
        probe_seen |= read.probe_seen;
        if read.last.is_some() || start == low {
            return Ok((read.last, probe_seen));
        }
        (end, window) = (start, window.saturating_mul(4));
    }
}

/// The offsets the newest window of a progress read covers: 32 commits
/// of one writer (a record and its transaction marker each). A pipeline
/// commits every 500 ms by default, and its progress topic is compacted
/// only once a segment closes (7 days by default): reading it from its
/// start made a restart's cost grow with the pipeline's age.
const FIRST_WINDOW: i64 = 64;

/// What one window of the progress topic held.
struct Window {
    /// The last committed progress record of the writer in it.
    last: Option<ProgressRecord>,
    /// Whether the writer's aborted probe record was visible.
    probe_seen: bool,
}

/// Reads offsets `start..end` of partition 0 of `topic` with the
/// read_committed `consumer`, until its position reaches `end` (transaction
/// markers included) or the `deadline` passes (an error).
fn read_window(
    consumer: &QuickClose<DefaultConsumerContext>,
    topic: &str,
    writer: &str,
    (start, end): (i64, i64),
    deadline: Instant,
    timeout: Duration,
) -> Result<Window> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Offset(start))
        .and_then(|()| consumer.assign(&list))
        .map_err(|e| Error::kafka_from(format!("progress topic '{topic}': cannot assign partition 0"), &e))?;
    let probe = probe_key(writer);
    let mut read = Window { last: None, probe_seen: false };
    let mut last_error = String::new();
    loop {
        // The position passes control records too (transaction markers).
        let position = consumer
            .position()
            .ok()
            .and_then(|list| list.find_partition(topic, 0).and_then(|e| e.offset().to_raw()))
            .unwrap_or(-1);
        if position >= end {
            return Ok(read);
        }
        if Instant::now() >= deadline {
            return Err(Error::kafka(format!(
                "progress topic '{topic}' partition 0: read_committed reached offset {position} of {end} within \
                 {timeout:?}{last_error} (a transaction of another writer still open?); refusing to resume from a \
                 stale commit"
            )));
        }
        // Short: the partition's last records are transaction markers, which
        // move the position without waking the poll.
        match consumer.poll(Duration::from_millis(10)) {
            None => {}
            Some(Ok(message)) if message.offset() >= end => {}
            Some(Ok(message)) => {
                let key = message.key().unwrap_or_default();
                if key == probe.as_bytes() {
                    read.probe_seen = true;
                } else if key == writer.as_bytes() {
                    let progress: ProgressRecord = serde_json::from_slice(message.payload().unwrap_or_default())
                        .map_err(|e| {
                            Error::kafka_from(
                                format!(
                                    "progress topic '{topic}' partition 0 offset {}: not a progress record",
                                    message.offset()
                                ),
                                &e,
                            )
                        })?;
                    read.last = Some(progress);
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            // Transient (a broker connection): retried until the deadline.
            Some(Err(error)) => last_error = format!(" (last error: {error})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_record_reads_back_as_written() {
        let progress = ProgressRecord {
            format: PROGRESS_FORMAT,
            writer: "timely-kafka.lines.counts".into(),
            commit: 7,
            frontier: 1_700_000_000_200,
            input: "lines".into(),
            input_id: Some("kLBQtEBfRGOTo7Eq7nRd0A".into()),
            offsets: [(0, 120), (1, 0), (12, 9)].into(),
            starts: [(0, 0), (1, 0), (12, 3)].into(),
            states: [(
                "counts".to_string(),
                ChangelogExtent {
                    topic: "counts.state.counts".into(),
                    topic_id: None,
                    starts: [(0, 0)].into(),
                    ends: [(0, 9)].into(),
                },
            )]
            .into(),
        };
        let bytes = serde_json::to_vec(&progress).unwrap();
        assert_eq!(serde_json::from_slice::<ProgressRecord>(&bytes).unwrap(), progress);
        assert_ne!(probe_key(&progress.writer).as_bytes(), progress.writer.as_bytes());
    }

    #[test]
    fn a_progress_record_written_before_topic_ids_reads_back() {
        let written =
            br#"{"format":1,"writer":"w","commit":2,"frontier":9,"input":"lines","offsets":{"0":4},"starts":{"0":0}}"#;
        let progress: ProgressRecord = serde_json::from_slice(written).unwrap();
        assert_eq!((progress.commit, progress.input_id), (2, None));
        assert!(progress.states.is_empty());
    }
}
