//! The changelog topics at start: created on a state's first use, checked
//! against the last commit on every later one.
//!
//! A changelog is created like the progress topic (compacted, no time or
//! size retention: the broker then also refuses DeleteRecords on it) and
//! its settings are checked at every start. A start whose last commit
//! holds a state refuses, in one line naming topic and partition, a
//! changelog that is missing, was deleted and created again (another topic
//! id), has another partition count (a key would move to another
//! partition, where compaction cannot see its older values), ends before
//! what the commit wrote, or lost records the state needs.

use super::super::progress::{ChangelogExtent, ProgressRecord};
use super::super::progress_topic::{check_settings, PROGRESS_TOPIC_CONFIGS};
use super::super::PipelineConfig;
use crate::error::{Error, Result};
use crate::log::kafka::KafkaLog;
use crate::log::LogBackend;

/// Creates the changelog `topic` with `partitions` partitions if it is
/// missing (never the output, which the program creates); refuses one
/// whose settings would delete records (`check`: false on a broker that
/// does not describe topics).
fn ensure_changelog(log: &KafkaLog, topic: &str, what: &str, partitions: u32, check: bool) -> Result<u32> {
    let partitions = match log.topic_info(topic)? {
        Some(info) => info.partitions,
        None => {
            log.create_with_configs(topic, partitions, PROGRESS_TOPIC_CONFIGS)?;
            partitions
        }
    };
    if check {
        if let Ok(Some(configs)) = log.topic_configs(topic) {
            check_settings(what, topic, &configs)?;
        }
    }
    Ok(partitions)
}

/// How an error names the topic of state `name`: its changelog, or the
/// output topic that keeps it.
pub(in super::super) fn topic_role(config: &PipelineConfig, name: &str) -> String {
    if config.state_in_output.as_deref() == Some(name) {
        format!("output topic (it keeps state '{name}')")
    } else {
        "changelog topic".to_string()
    }
}

/// Refuses `partitioner=random` with declared state: the producer's
/// partitioner places the changelog records by key, and compaction and the
/// restore need each key's changes in one partition (librdkafka's other
/// partitioners are deterministic for a non-empty key, which every
/// encoded key is).
pub(in super::super) fn refuse_random_partitioner(log: &KafkaLog, id: &str) -> Result<()> {
    match log.property("partitioner") {
        Some(partitioner) if partitioner.trim() == "random" => Err(Error::Config(format!(
            "exactly-once pipeline '{id}': client property 'partitioner=random' would spread a key's changes over \
             the partitions of its state's changelog (compaction and the restore need them in one); remove it"
        ))),
        _ => Ok(()),
    }
}

/// Checks (or, on a state's first use, creates) the changelog of each
/// state `config` declares (the output itself for the state kept there),
/// and records its extent in `progress`: the last commit's, or the
/// topic's current end on a first use (records an earlier pipeline left
/// there are not this one's).
pub(in super::super) fn check_changelogs(
    log: &KafkaLog,
    config: &PipelineConfig,
    partitions: u32,
    check: bool,
    progress: &mut ProgressRecord,
) -> Result<()> {
    for name in &config.states {
        let topic = config.state_topic(name);
        let role = topic_role(config, name);
        match progress.states.get(name) {
            Some(extent) if extent.topic != topic => {
                return Err(Error::Config(format!(
                    "{role} '{topic}': the last commit ({}) kept state '{name}' in topic '{}', not in this one, \
                     so the state at its frontier cannot be restored from it; declare the state as before, or \
                     start a new pipeline (new output and progress topics)",
                    progress.commit, extent.topic
                )))
            }
            Some(extent) => check_extent(log, name, &role, extent, progress.commit, check)?,
            None if progress.commit > 0 => {
                return Err(Error::Config(format!(
                    "{role} '{topic}': the last commit ({}) holds no state '{name}' (it was made before the \
                     program declared it), so the state at its frontier cannot be restored; start a new pipeline \
                     (new output and progress topics)",
                    progress.commit
                )))
            }
            None => {
                let partitions = ensure_changelog(log, &topic, &role, partitions, check)?;
                let starts = (0..partitions)
                    .map(|partition| Ok((partition, log.watermarks(&topic, partition)?.1)))
                    .collect::<Result<std::collections::BTreeMap<u32, u64>>>()?;
                let topic_id = if check { log.topic_id(&topic)? } else { None };
                let extent = ChangelogExtent { topic, topic_id, ends: starts.clone(), starts };
                progress.states.insert(name.clone(), extent);
            }
        }
    }
    Ok(())
}

/// Refuses a changelog that no longer holds what the last commit wrote.
fn check_extent(
    log: &KafkaLog,
    name: &str,
    role: &str,
    extent: &ChangelogExtent,
    commit: u64,
    check: bool,
) -> Result<()> {
    let topic = &extent.topic;
    let refuse = |what: String| {
        Err(Error::Config(format!(
            "{role} '{topic}' of state '{name}': {what}; refusing to restore the state of commit {commit} \
             (start a new pipeline: new output and progress topics)"
        )))
    };
    let Some(info) = log.topic_info(topic)? else {
        return refuse("the topic is missing (deleted?)".into());
    };
    if check {
        if let (Some(then), Some(now)) = (extent.topic_id.as_deref(), log.topic_id(topic)?.as_deref()) {
            if then != now {
                return refuse(format!(
                    "the topic was deleted and created again (topic id {now}, the commit wrote {then})"
                ));
            }
        }
        if let Ok(Some(configs)) = log.topic_configs(topic) {
            check_settings(role, topic, &configs)?;
        }
    }
    if info.partitions as usize != extent.starts.len() {
        return refuse(format!(
            "it has {} partitions, the commit wrote {} (a key's changes would be in two partitions)",
            info.partitions,
            extent.starts.len()
        ));
    }
    for (&partition, &start) in &extent.starts {
        let end = extent.ends.get(&partition).copied().unwrap_or(start);
        let (low, high) = log.watermarks(topic, partition)?;
        if high < end {
            return refuse(format!(
                "partition {partition} ends at offset {high} but the commit wrote changes up to offset {end} \
                 (truncated, or deleted and created again)"
            ));
        }
        if low > start && low > 0 && start < end {
            return refuse(format!(
                "partition {partition}: records below offset {low} were deleted but the state begins at offset {start}"
            ));
        }
    }
    Ok(())
}
