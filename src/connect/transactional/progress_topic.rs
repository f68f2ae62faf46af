//! The progress topic must keep the pipeline's commits for as long as the
//! pipeline lives.
//!
//! A topic created with the broker's defaults deletes records older than
//! `retention.ms` — the active segment included — so a pipeline idle for a
//! week lost its last commit, and its next start began afresh and wrote
//! every output again. Like Materialize's progress topic, this one is
//! created compacted with time and size retention off (compaction keeps the
//! newest record of each key, and a commit's key is the pipeline's
//! identity), and its settings are checked at every start. A start that
//! finds no commit of its own while the progress topic lost records or the
//! output already holds committed records refuses, unless told to start
//! over ([`PipelineConfig::fresh`](super::PipelineConfig::fresh)).

use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, DefaultConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{Error, Result};
use crate::log::kafka::{KafkaLog, QuickClose, PRODUCER_ONLY};
use crate::log::LogBackend;

/// How a progress topic (and a changelog, and an output that keeps a
/// state) is created: compacted, nothing deleted by age or size. Its
/// segments close after an hour or 64 MiB: the broker compacts closed
/// segments only, and with its defaults (7 days, 1 GiB) a restore would
/// read up to a week of changes, not the state.
pub(super) const PROGRESS_TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("cleanup.policy", "compact"),
    ("retention.ms", "-1"),
    ("retention.bytes", "-1"),
    ("segment.ms", "3600000"),
    ("segment.bytes", "67108864"),
];

/// Creates the progress topic if it is missing; refuses one whose settings
/// would delete commits.
pub(super) fn ensure_progress_topic(log: &KafkaLog, topic: &str, check: bool) -> Result<()> {
    if log.topic_info(topic)?.is_none() {
        log.create_with_configs(topic, 1, PROGRESS_TOPIC_CONFIGS)?;
    }
    if !check {
        return Ok(());
    }
    match log.topic_configs(topic) {
        Ok(Some(configs)) => check_settings("progress topic", topic, &configs),
        // A broker that does not describe topics (librdkafka's mock cluster).
        Ok(None) | Err(_) => Ok(()),
    }
}

/// Refuses settings under which the broker deletes records by age or size
/// (`what`: "progress topic", "changelog topic").
pub(super) fn check_settings(what: &str, topic: &str, configs: &[(String, String)]) -> Result<()> {
    let get = |key: &str| configs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let policy = get("cleanup.policy").unwrap_or("delete");
    if !policy.contains("delete") {
        return Ok(());
    }
    let unbounded = |key: &str| get(key).is_some_and(|v| v.trim() == "-1");
    if unbounded("retention.ms") && unbounded("retention.bytes") {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{what} '{topic}': cleanup.policy={policy} with retention.ms={} and retention.bytes={} would \
         delete what the pipeline committed; set cleanup.policy=compact (kafka-configs.sh --alter --entity-type topics \
         --entity-name {topic} --add-config cleanup.policy=compact)",
        get("retention.ms").unwrap_or("(default)"),
        get("retention.bytes").unwrap_or("(default)")
    )))
}

/// With no commit of this pipeline found: refuses when the progress topic
/// lost records (its log start is past 0) or the output holds committed
/// records, since starting over would write every output again.
pub(super) fn refuse_start_over(log: &KafkaLog, progress: &str, output: &str, timeout: Duration) -> Result<()> {
    let (first, _) = log.watermarks(progress, 0)?;
    if first > 0 {
        return Err(Error::Config(format!(
            "progress topic '{progress}': no commit of this pipeline, and records up to offset {first} were \
             deleted (retention or DeleteRecords): its last commit may be among them; starting over would write \
             every output again (start over explicitly: PipelineConfig::fresh, word_count --fresh)"
        )));
    }
    if let Some(partition) = first_committed_partition(log, output, timeout)? {
        return Err(Error::Config(format!(
            "output topic '{output}' partition {partition} holds committed records but progress topic \
             '{progress}' has no commit of this pipeline (deleted, or the pipeline's identity changed): starting \
             over would write every output again (start over explicitly: PipelineConfig::fresh, word_count \
             --fresh)"
        )));
    }
    Ok(())
}

/// A partition of `topic` holding a committed record, if any: read with
/// read_committed from each partition's start until a record or its end.
fn first_committed_partition(log: &KafkaLog, topic: &str, timeout: Duration) -> Result<Option<i32>> {
    let Some(info) = log.topic_info(topic)? else { return Ok(None) };
    if !info.has_data {
        return Ok(None);
    }
    let defaults = [
        ("group.id", "timely-kafka-progress"),
        ("enable.auto.commit", "false"),
        ("enable.partition.eof", "true"),
        ("isolation.level", "read_committed"),
        ("fetch.wait.max.ms", "10"),
    ];
    let consumer: QuickClose<DefaultConsumerContext> = log
        .config(&defaults, PRODUCER_ONLY)
        .create()
        .map(QuickClose::new)
        .map_err(|e| Error::kafka_from(format!("output topic '{topic}': cannot create consumer"), &e))?;
    let mut list = TopicPartitionList::new();
    for partition in 0..info.partitions as i32 {
        list.add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(|e| Error::kafka_from(format!("output topic '{topic}'"), &e))?;
    }
    consumer.assign(&list).map_err(|e| Error::kafka_from(format!("output topic '{topic}': assign"), &e))?;
    let (mut ended, deadline) = (0, Instant::now() + timeout);
    while ended < info.partitions {
        if Instant::now() >= deadline {
            return Err(Error::kafka(format!(
                "output topic '{topic}': not read to its end within {timeout:?} to find committed records"
            )));
        }
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(message)) => return Ok(Some(rdkafka::message::Message::partition(&message))),
            Some(Err(KafkaError::PartitionEOF(_))) => ended += 1,
            _ => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn settings_that_delete_commits_are_refused_in_one_line() {
        assert!(check_settings("progress topic", "p", &configs(PROGRESS_TOPIC_CONFIGS)).is_ok());
        assert!(check_settings("progress topic", "p", &configs(&[("cleanup.policy", "compact")])).is_ok());
        let unbounded = [("cleanup.policy", "delete"), ("retention.ms", "-1"), ("retention.bytes", "-1")];
        assert!(check_settings("progress topic", "p", &configs(&unbounded)).is_ok());
        for refused in [
            configs(&[("cleanup.policy", "delete"), ("retention.ms", "604800000"), ("retention.bytes", "-1")]),
            configs(&[("cleanup.policy", "compact,delete"), ("retention.ms", "1000")]),
            configs(&[]),
        ] {
            let error = check_settings("progress topic", "p", &refused).unwrap_err().to_string();
            assert!(error.contains("progress topic 'p'") && error.contains("cleanup.policy=compact"), "{error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }
}
