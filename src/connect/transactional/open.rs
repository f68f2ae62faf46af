//! The start of a pipeline: fence earlier instances, read the last
//! commit, check every topic it names against that commit.
//!
//! Worker 0 does this before any dataflow exists (the other workers wait
//! for what it learnt): everything a start refuses — a topic with the wrong
//! settings, a commit made on another input or another incarnation of it,
//! offsets or state the broker no longer holds — is refused here, in one
//! line, before one record is read or written. Each check costs a broker
//! round trip; the ones that do not need the last commit run while the
//! producer fences.

use std::collections::BTreeMap;

use timely::worker::Worker;

use super::progress::{read_progress, ProgressRecord, PROGRESS_FORMAT};
use super::transactions::TransactionalWriter;
use super::{budget, progress_topic, state, PipelineConfig, TransactionalPipeline};
use crate::error::{Error, Result};
use crate::log::kafka::KafkaLog;
use crate::log::{LogBackend, TopicInfo};
use crate::runtime::collective::{agree, all_gather};

/// Starts the pipeline on every worker (collective: call it on each, before
/// building the dataflow): worker 0 fences earlier instances and reads the
/// last commit, and every worker learns it.
pub fn open(worker: &mut Worker, config: &PipelineConfig) -> Result<TransactionalPipeline> {
    let started =
        if worker.index() == 0 { start(config).map(|(w, p)| (Some(w), p)) } else { Ok((None, Default::default())) };
    let shared = started.as_ref().map(|(_, progress)| progress.clone()).map_err(|e| e.to_string());
    let gathered = all_gather(worker, shared);
    let (writer, _) = agree(worker, started)?;
    let resume = match gathered.into_iter().next() {
        Some(Ok(progress)) => progress,
        Some(Err(message)) => return Err(Error::Dataflow(message)),
        None => return Err(Error::Dataflow("worker 0 did not report the last commit".into())),
    };
    Ok(TransactionalPipeline { config: config.clone(), resume, writer })
}

/// Creates `topic` with `partitions` partitions, compacted with no time or
/// size retention, unless it exists: the output topic of a pipeline that
/// keeps a state in it ([`PipelineConfig::state_in_output`]). An existing
/// topic is left as it is; [`open`] refuses it if its settings would
/// delete records.
pub fn create_state_output(log: &KafkaLog, topic: &str, partitions: u32) -> Result<()> {
    if log.topic_info(topic)?.is_some() {
        return Ok(());
    }
    match log.create_with_configs(topic, partitions, progress_topic::PROGRESS_TOPIC_CONFIGS) {
        // Created meanwhile by another process: checked at open.
        Err(_) if log.topic_info(topic)?.is_some() => Ok(()),
        created => created,
    }
}

/// Client properties an exactly-once pipeline sets itself, and why: given
/// in the client properties, they would quietly change what it guarantees.
const PIPELINE_PROPERTIES: &[(&str, &str)] = &[
    ("isolation.level", "it reads its progress and input with read_committed"),
    ("auto.offset.reset", "its source fails, never skips, when the offsets it resumes from are gone"),
    ("transactional.id", "it is the pipeline's identity: set PipelineConfig::transactional_id"),
    ("transaction.timeout.ms", "set PipelineConfig::transaction_timeout: the commit budget is checked against it"),
    ("enable.idempotence", "transactions need it"),
];

/// Refuses client properties the pipeline must set itself, naming the first.
fn refuse_overrides(log: &KafkaLog, id: &str) -> Result<()> {
    match PIPELINE_PROPERTIES.iter().find(|(key, _)| log.property(key).is_some()) {
        Some((key, why)) => Err(Error::Config(format!(
            "exactly-once pipeline '{id}': client property '{key}' is set by the pipeline ({why}); remove it"
        ))),
        None => Ok(()),
    }
}

/// Worker 0's part of [`open`].
fn start(config: &PipelineConfig) -> Result<(TransactionalWriter, ProgressRecord)> {
    let log = &config.kafka;
    refuse_overrides(log, &config.transactional_id)?;
    if !config.states.is_empty() {
        state::refuse_random_partitioner(log, &config.transactional_id)?;
    }
    budget::check_budget(&config.transactional_id, config.transaction_timeout, config.timeout)?;
    // The topics are checked (the progress topic created on a first start)
    // while the producer fences: each costs broker round trips.
    let (writer, input) = std::thread::scope(|scope| {
        let topics = scope.spawn(|| check_topics(config));
        let changelogs: Vec<String> = config.states.iter().map(|name| config.state_topic(name)).collect();
        let writer = TransactionalWriter::start(
            log,
            &config.transactional_id,
            &config.output,
            &changelogs,
            &config.progress_topic,
            config.transaction_timeout,
            config.timeout,
        );
        let input = topics.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        Ok::<_, Error>((writer?.crash_at(config.crash_at.clone()), input))
    })?;
    writer.crash_point("after-fence");
    writer.probe()?;
    writer.crash_point("after-probe");
    let (last, probe_visible) = read_progress(log, &config.progress_topic, &config.transactional_id, config.timeout)?;
    if probe_visible && !config.accept_broker_without_aborts {
        return Err(Error::Config(format!(
            "exactly-once sink refused: the brokers show aborted transactions to read_committed readers \
             (progress topic '{}'; librdkafka's mock cluster?): exactly-once needs a broker with transactions, \
             such as Apache Kafka",
            config.progress_topic
        )));
    }
    if last.is_none() && !config.fresh {
        progress_topic::refuse_start_over(log, &config.progress_topic, &config.output, config.timeout)?;
    }
    let mut progress = match last {
        Some(progress) if progress.format != PROGRESS_FORMAT => {
            return Err(Error::Config(format!(
                "progress topic '{}': format {} written by a newer version (this one reads {PROGRESS_FORMAT})",
                config.progress_topic, progress.format
            )))
        }
        Some(progress) if progress.input != config.input => {
            return Err(Error::Config(format!(
                "progress topic '{}' belongs to a pipeline reading topic '{}', not '{}'",
                config.progress_topic, progress.input, config.input
            )))
        }
        Some(progress) => progress,
        None => ProgressRecord {
            format: PROGRESS_FORMAT,
            writer: config.transactional_id.clone(),
            input: config.input.clone(),
            ..Default::default()
        },
    };
    // Asked only now: librdkafka's mock cluster (refused above unless a
    // test accepts it) never answers DescribeTopics.
    let input_id = if config.accept_broker_without_aborts { None } else { log.topic_id(&config.input)? };
    check_same_input(&config.input, &progress, input_id.as_deref())?;
    if input_id.is_some() {
        progress.input_id = input_id;
    }
    check_bindings_stored(log, &config.input, &progress)?;
    let partitions = config.state_partitions.unwrap_or(input.partitions).max(1);
    let check = !config.accept_broker_without_aborts;
    state::check_changelogs(log, config, partitions, check, &mut progress)?;
    // Partitions the last commit does not know (a first start, or added
    // since) begin at their first retained offset.
    let missing: Vec<u32> = (0..input.partitions).filter(|p| !progress.starts.contains_key(p)).collect();
    if !missing.is_empty() {
        let starts = first_offsets(log, &config.input, &missing)?;
        for (partition, start) in starts {
            progress.starts.insert(partition, start);
            progress.offsets.entry(partition).or_insert(start);
        }
    }
    Ok((writer, progress))
}

/// The input topic, after checking that the output topic exists and
/// creating the progress topic if it does not.
fn check_topics(config: &PipelineConfig) -> Result<TopicInfo> {
    let log = &config.kafka;
    if log.topic_info(&config.output)?.is_none() {
        return Err(Error::MissingTopic(config.output.clone()));
    }
    // librdkafka's mock cluster (the tests' broker without aborts) does not
    // answer DescribeConfigs: the check would wait out its timeout.
    let check_settings = !config.accept_broker_without_aborts;
    progress_topic::ensure_progress_topic(log, &config.progress_topic, check_settings)?;
    let input = log.topic_info(&config.input)?.ok_or_else(|| Error::MissingTopic(config.input.clone()))?;
    if check_settings && config.replays() {
        refuse_compacted_input(log, &config.input)?;
    }
    Ok(input)
}

/// Refuses a last commit made on another incarnation of the input topic:
/// deleted and created again under the same name, its offsets name other
/// records, and resuming from the binding would skip or repeat them
/// silently — also when the new topic has grown past the binding, which
/// [`check_bindings_stored`] cannot see.
fn check_same_input(input: &str, progress: &ProgressRecord, now: Option<&str>) -> Result<()> {
    match (progress.input_id.as_deref(), now) {
        (Some(then), Some(now)) if then != now => Err(Error::Config(format!(
            "topic '{input}' was deleted and created again: its topic id is {now}, the last commit ({}) read \
             topic id {then}; its offsets name other records now, so refusing to continue exactly once (start a \
             new pipeline: new output and progress topics)",
            progress.commit
        ))),
        _ => Ok(()),
    }
}

/// Refuses a compacted input when state is rebuilt by replaying it from its
/// start: compaction removed the older records of each key, so the rebuilt
/// state would not be the one committed (counts too low, silently).
fn refuse_compacted_input(log: &KafkaLog, input: &str) -> Result<()> {
    let Ok(Some(configs)) = log.topic_configs(input) else { return Ok(()) };
    match configs.iter().find(|(key, _)| key == "cleanup.policy") {
        Some((_, policy)) if policy.contains("compact") => Err(Error::Config(format!(
            "input topic '{input}' is compacted (cleanup.policy={policy}): replaying it from its start would \
             rebuild the state without the records compaction removed; use an input that is not compacted, or \
             set PipelineConfig::replay_from_start = false if the computation keeps no state"
        ))),
        _ => Ok(()),
    }
}

/// Refuses a last commit bound to offsets the input no longer reaches: the
/// input topic was deleted and created again (or truncated), so reading
/// "from the binding" would wait for offsets that may never come, or read
/// other records under old numbers. Silent before: no output, exit 0.
fn check_bindings_stored(log: &KafkaLog, input: &str, progress: &ProgressRecord) -> Result<()> {
    for (&partition, &bound) in &progress.offsets {
        let (_, end) = log.watermarks(input, partition)?;
        if bound > end {
            return Err(Error::Config(format!(
                "topic '{input}' partition {partition}: the last commit ({}) read to offset {bound} but the \
                 partition ends at {end}: the input topic was deleted and created again, or truncated; refusing \
                 to continue exactly once (start a new pipeline: new output and progress topics)",
                progress.commit
            )));
        }
    }
    Ok(())
}

/// The first retained offset of each of `partitions` of `topic`.
fn first_offsets(log: &KafkaLog, topic: &str, partitions: &[u32]) -> Result<BTreeMap<u32, u64>> {
    partitions.iter().map(|&partition| Ok((partition, log.watermarks(topic, partition)?.0))).collect()
}
