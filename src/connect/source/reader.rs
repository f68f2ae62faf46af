//! The source's consumer: assignment (explicit or by group), per-partition
//! state, rebalances, and offset commits.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use timely::dataflow::ProbeHandle;

use super::binding::SourceResume;
use super::config::{SourceConfig, SourceEnd};
use crate::error::Error;
use crate::log::kafka::metadata::existing_partition_count;
use crate::log::kafka::retry::retry;
use crate::log::kafka::{QuickClose, PRODUCER_ONLY};

/// Assignment changes reported by librdkafka's rebalance callbacks.
#[derive(Default)]
pub(super) struct Rebalances {
    pub(super) assigned: Vec<u32>,
    pub(super) revoked: Vec<u32>,
    /// An assignment, possibly empty, has been received.
    pub(super) settled: bool,
}

pub(super) struct GroupContext {
    pub(super) topic: String,
    pub(super) changes: Arc<Mutex<Rebalances>>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Ok(mut changes) = self.changes.lock() else { return };
        match rebalance {
            Rebalance::Assign(list) => {
                changes.settled = true;
                changes
                    .assigned
                    .extend(list.elements().iter().filter(|e| e.topic() == self.topic).map(|e| e.partition() as u32))
            }
            Rebalance::Revoke(list) => changes
                .revoked
                .extend(list.elements().iter().filter(|e| e.topic() == self.topic).map(|e| e.partition() as u32)),
            Rebalance::Error(_) => {}
        }
    }
}

/// What the source knows about one assigned partition.
pub(super) struct PartitionState {
    pub(super) watermark: u64,
    pub(super) last_record: Instant,
    /// Exclusive end offset, once known (`None` and not `end_pending`: live).
    pub(super) end: Option<u64>,
    /// `CurrentEnd`: the end is the high watermark of the partition's first
    /// fetch response, read when its first record or end-of-partition event
    /// arrives (see [`super::fetch_end`]).
    pub(super) end_pending: bool,
    pub(super) done: bool,
    /// The offset after the last record delivered (exactly-once mode).
    pub(super) next_offset: u64,
    /// Whether the consumer reached the end of what the partition stores
    /// (its end-of-partition event came after its last record): only such
    /// a partition may count as idle in an exactly-once source.
    pub(super) at_end: bool,
}

/// The source's consumer and its offset bookkeeping. Commits everything
/// still pending when dropped after a clean finish.
/// Per time, the next offset of each partition once that time is finished.
pub(super) type Pending = BTreeMap<u64, HashMap<u32, u64>>;

pub(super) struct Reader {
    pub(super) consumer: QuickClose<GroupContext>,
    pub(super) topic: String,
    pub(super) group: bool,
    /// Per time, the next offset of each partition once that time is finished.
    pub(super) pending: Pending,
    /// Next offset per partition of everything finished so far.
    pub(super) finished: HashMap<u32, u64>,
    pub(super) probe: Option<ProbeHandle<u64>>,
    /// Set when the computation failed: its closed frontier finished
    /// nothing, so no offset may be committed any more.
    pub(super) failed: bool,
    /// The topic's partition count when explicitly assigned (no group).
    pub(super) partitions: Option<u32>,
}

impl Reader {
    /// Moves the offsets of every time the probe has passed (or of every time,
    /// with `all`) into `finished`, and commits them.
    pub(super) fn commit_finished(&mut self, all: bool, mode: CommitMode) {
        if !self.group || self.failed {
            return;
        }
        let mut changed = false;
        while let Some((&time, _)) = self.pending.first_key_value() {
            let finished = all || self.probe.as_ref().is_some_and(|p| !p.less_equal(&time));
            if !finished {
                break;
            }
            if let Some((_, parts)) = self.pending.pop_first() {
                for (partition, next) in parts {
                    let entry = self.finished.entry(partition).or_default();
                    changed |= next > *entry;
                    *entry = (*entry).max(next);
                }
            }
        }
        if !changed && matches!(mode, CommitMode::Async) {
            return;
        }
        let mut list = TopicPartitionList::new();
        for (partition, next) in &self.finished {
            let _ = list.add_partition_offset(&self.topic, *partition as i32, Offset::Offset(*next as i64));
        }
        if list.count() == 0 {
            return;
        }
        let sync = matches!(mode, CommitMode::Sync);
        let mut attempts = 0;
        while let Err(error) = self.consumer.commit(&list, mode) {
            attempts += 1;
            // A rebalance in progress refuses commits for a moment: serve it and retry.
            if sync && attempts < 50 {
                let _ = self.consumer.poll(Duration::from_millis(100));
                continue;
            }
            eprintln!("timely-kafka: commit of topic '{}' offsets failed: {error}", self.topic);
            break;
        }
    }
}

impl Reader {
    /// Exactly once, when librdkafka asks for an offset reset (which
    /// `auto.offset.reset=error` turns into an error without naming the
    /// partition): retention deleted the position, or librdkafka could not
    /// validate it. The source knows the offset it needs next in each
    /// partition: while retained it seeks there; otherwise it is the
    /// retention error, naming the partition and offsets.
    pub(super) fn reseek(&self, next: &[(u32, u64)], timeout: Duration) -> Result<(), Error> {
        for &(partition, offset) in next {
            check_retained(&self.consumer, &self.topic, partition, offset, timeout)?;
            self.consumer.seek(&self.topic, partition as i32, Offset::Offset(offset as i64), timeout).map_err(|e| {
                Error::kafka_from(format!("topic '{}' partition {partition}: cannot seek to {offset}", self.topic), &e)
            })?;
        }
        Ok(())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Commit, synchronously so it is not lost as the consumer closes,
        // what the probe has finished; never the unfinished rest.
        self.commit_finished(false, CommitMode::Sync);
    }
}

/// Whether a consumer error ends the source: librdkafka's fatal errors and
/// those no retry can fix (`crate::error::ends_a_consumer`).
pub(super) fn is_fatal(error: &KafkaError) -> bool {
    match error {
        KafkaError::MessageConsumptionFatal(_) => true,
        KafkaError::MessageConsumption(code) | KafkaError::Global(code) => crate::error::ends_a_consumer(*code),
        _ => false,
    }
}

pub(super) fn open_reader(
    config: &SourceConfig,
    topic: &str,
    index: usize,
    peers: usize,
    changes: Arc<Mutex<Rebalances>>,
    probe: Option<ProbeHandle<u64>>,
    resume: Option<&SourceResume>,
) -> Result<Reader, Error> {
    let group = config.group_id.clone();
    if group.is_some() && resume.is_some() {
        return Err(Error::Config(
            "exactly-once reading assigns partitions itself: a consumer group cannot be used".into(),
        ));
    }
    if let Some(input) = resume.and_then(|resume| resume.topic.as_deref()).filter(|input| *input != topic) {
        return Err(Error::Config(format!(
            "exactly-once source of topic '{topic}': the pipeline's input is '{input}', and its commits bind \
             offsets of '{input}' only"
        )));
    }
    if resume.is_some() {
        for key in ["isolation.level", "auto.offset.reset"] {
            if config.kafka.property(key).is_some() {
                return Err(Error::Config(format!(
                    "exactly-once source of topic '{topic}': client property '{key}' is set by the source \
                     (read_committed; a missing offset fails, never skips); remove it"
                )));
            }
        }
    }
    let group_id = group.clone().unwrap_or_else(|| "timely-kafka-source".into());
    let defaults: &[(&str, &str)] = &[
        ("group.id", &group_id),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("enable.partition.eof", "true"),
        // Exactly once: an offset deleted by retention is an error, never a jump.
        ("auto.offset.reset", if resume.is_some() { "error" } else { "earliest" }),
        ("fetch.wait.max.ms", "10"),
        ("allow.auto.create.topics", "false"),
    ];
    let context = GroupContext { topic: topic.to_string(), changes: changes.clone() };
    let consumer = config
        .kafka
        .config(defaults, PRODUCER_ONLY)
        .create_with_context(context)
        .map(QuickClose::new)
        .map_err(|e| Error::kafka_from("cannot create consumer", &e))?;
    let mut count = None;
    if group.is_some() {
        consumer.subscribe(&[topic]).map_err(|e| Error::kafka_from("cannot subscribe", &e))?;
    } else {
        let partitions = topic_partitions(&consumer, topic, config.broker_timeout)?;
        count = Some(partitions);
        let mine: Vec<u32> = (0..partitions).filter(|p| *p as usize % peers == index).collect();
        let mut list = TopicPartitionList::new();
        for partition in &mine {
            let offset = match resume {
                Some(resume) => {
                    let from = resume.read_from(*partition);
                    check_retained(&consumer, topic, *partition, from, config.broker_timeout)?;
                    Offset::Offset(from as i64)
                }
                None => Offset::Beginning,
            };
            let _ = list.add_partition_offset(topic, *partition as i32, offset);
        }
        consumer.assign(&list).map_err(|e| Error::kafka_from("cannot assign partitions", &e))?;
        if let Ok(mut changes) = changes.lock() {
            changes.assigned.extend(mine);
            changes.settled = true;
        }
    }
    Ok(Reader {
        consumer,
        topic: topic.to_string(),
        group: group.is_some(),
        pending: BTreeMap::new(),
        finished: HashMap::new(),
        probe,
        failed: false,
        partitions: count,
    })
}

/// Fails unless `partition` still holds `from` (retention may have deleted
/// it: reading on would silently skip records the committed state needs).
fn check_retained<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: u32,
    from: u64,
    timeout: Duration,
) -> Result<(), Error> {
    let (low, _high) = retry(timeout, |_, per_try| consumer.fetch_watermarks(topic, partition as i32, per_try))
        .map_err(|e| {
            Error::kafka_from(format!("topic '{topic}' partition {partition}: no offsets within {timeout:?}"), &e)
        })?;
    if low > from as i64 {
        return Err(Error::kafka(format!(
            "topic '{topic}' partition {partition}: records from offset {from} are needed but retention deleted \
             everything below offset {low}; the pipeline cannot continue exactly once"
        )));
    }
    Ok(())
}

/// The partition count of `topic`: an error if the broker does not answer
/// within `timeout` or the topic does not exist.
pub(super) fn topic_partitions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<u32, Error> {
    existing_partition_count(consumer.client(), topic, timeout)
}

/// Applies assignment changes: new partitions start at the current frontier.
pub(super) fn apply_rebalances(
    config: &SourceConfig,
    changes: &Arc<Mutex<Rebalances>>,
    partitions: &mut BTreeMap<u32, PartitionState>,
    frontier: &u64,
    ever_assigned: &mut bool,
) {
    let (assigned, revoked) = match changes.lock() {
        Ok(mut changes) => {
            // An empty assignment counts: a worker with no partitions is done.
            *ever_assigned |= changes.settled;
            (std::mem::take(&mut changes.assigned), std::mem::take(&mut changes.revoked))
        }
        Err(_) => return,
    };
    for partition in revoked {
        partitions.remove(&partition);
    }
    for partition in assigned {
        *ever_assigned = true;
        let end = match &config.end {
            SourceEnd::Live | SourceEnd::CurrentEnd => None,
            SourceEnd::Offsets(ends) => ends.get(&partition).copied(),
        };
        let end_pending = config.end == SourceEnd::CurrentEnd;
        let done = end == Some(0);
        let state = PartitionState {
            watermark: *frontier,
            last_record: Instant::now(),
            end,
            end_pending,
            done,
            next_offset: 0,
            at_end: false,
        };
        partitions.insert(partition, state);
    }
    if let Ok(mut assigned) = config.assigned.lock() {
        *assigned = partitions.keys().copied().collect();
    }
}
