//! `kafka_source`: plain Kafka records (other programs' topics) into timely.
//!
//! The topic's partitions are spread over the workers — explicitly (worker j
//! reads every partition p with p % peers == j) or by a consumer group, which
//! also spreads them over processes and hands them over on rebalance. User
//! logic turns each record (key, payload, partition, offset, Kafka timestamp)
//! into data at a timestamp it chooses; [`time`] has the two usual choices.
//!
//! Progress: each partition has a watermark, the largest time it has
//! produced. The source's frontier is the least watermark over the partitions
//! still running; a partition with no record for `idle_timeout` stops holding
//! the frontier back (a later record from it is delivered at the current
//! frontier, never behind it). A partition that reaches its requested end
//! stops; when every assigned partition has stopped, the stream ends.
//!
//! Offsets (with a group id and a probe): a partition's offset is committed
//! only once the probe's frontier has passed the times of every record before
//! it, so a restarted job resumes without losing or re-emitting finished
//! output. Records emitted but not yet finished when a job dies are consumed
//! again after the restart (at-least-once for unfinished work).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::{ProbeHandle, Scope, Stream};

use crate::log::kafka::{KafkaLog, PRODUCER_ONLY};

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

/// Ready-made timestamp choices for [`kafka_source`] logic.
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
    /// The end each partition has when it is assigned.
    CurrentEnd,
    /// An exclusive end offset per partition (partitions not named: live).
    Offsets(BTreeMap<u32, u64>),
}

/// How a [`kafka_source`] reads.
#[derive(Clone)]
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

    /// Sets the idle timeout.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }
}

/// Assignment changes reported by librdkafka's rebalance callbacks.
#[derive(Default)]
struct Rebalances {
    assigned: Vec<u32>,
    revoked: Vec<u32>,
    /// An assignment, possibly empty, has been received.
    settled: bool,
}

struct GroupContext {
    topic: String,
    changes: Arc<Mutex<Rebalances>>,
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
struct PartitionState {
    watermark: u64,
    last_record: Instant,
    end: Option<u64>,
    done: bool,
}

/// The source's consumer and its offset bookkeeping. Commits everything
/// still pending when dropped after a clean finish.
struct Reader {
    consumer: BaseConsumer<GroupContext>,
    topic: String,
    group: bool,
    /// Per time, the next offset of each partition once that time is finished.
    pending: BTreeMap<u64, HashMap<u32, u64>>,
    /// Next offset per partition of everything finished so far.
    finished: HashMap<u32, u64>,
    probe: Option<ProbeHandle<u64>>,
}

impl Reader {
    /// Moves the offsets of every time the probe has passed (or of every time,
    /// with `all`) into `finished`, and commits them.
    fn commit_finished(&mut self, all: bool, mode: CommitMode) {
        if !self.group {
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

impl Drop for Reader {
    fn drop(&mut self) {
        // Commit, synchronously so it is not lost as the consumer closes,
        // what the probe has finished; never the unfinished rest.
        self.commit_finished(false, CommitMode::Sync);
    }
}

/// Reads `topic` into a stream of `D` at times chosen by `logic`.
///
/// `logic` returns `None` to drop a record (e.g. one it cannot parse; or
/// make `D` a `Result` to pass errors on). With a group id, pass the probe
/// of the dataflow's output as `commit_probe` so offsets are committed only
/// for finished output; without one, offsets are committed when the stream
/// completes.
pub fn kafka_source<'scope, D, L>(
    scope: Scope<'scope, u64>,
    config: SourceConfig,
    topic: &str,
    commit_probe: Option<ProbeHandle<u64>>,
    mut logic: L,
) -> Stream<'scope, u64, Vec<D>>
where
    D: Clone + 'static,
    L: FnMut(&SourceRecord<'_>) -> Option<(u64, D)> + 'static,
{
    let (index, peers) = (scope.index(), scope.peers());
    let topic = topic.to_string();
    let mut builder = OperatorBuilder::new(format!("KafkaSource({topic})"), scope);
    let info = builder.operator_info();
    let (output, stream) = builder.new_output::<Vec<D>>();
    let mut output = OutputBuilder::<_, CapacityContainerBuilder<Vec<D>>>::from(output);
    // `build_reschedule`: after releasing its capability the operator stays
    // alive, and its consumer in the group, until its last offsets commit.
    builder.build_reschedule(move |mut capabilities| {
        let capability = capabilities.pop().expect("one output, one capability");
        let activator = scope.activator_for(info.address);
        let changes = Arc::new(Mutex::new(Rebalances::default()));
        let mut reader = open_reader(&config, &topic, index, peers, changes.clone(), commit_probe);
        let mut partitions: BTreeMap<u32, PartitionState> = BTreeMap::new();
        let mut capability: Option<Capability<u64>> = Some(capability);
        let mut ever_assigned = false;
        move |_frontiers| {
            let Some(cap) = capability.as_mut() else {
                // Released: wait for the output to finish, then commit its offsets.
                if reader.probe.as_ref().is_none_or(|p| p.done()) {
                    reader.commit_finished(true, CommitMode::Sync);
                    return false;
                }
                reader.commit_finished(false, CommitMode::Async);
                activator.activate_after(Duration::from_millis(10));
                return true;
            };
            let mut output = output.activate();
            apply_rebalances(&reader, &config, &changes, &mut partitions, cap.time(), &mut ever_assigned);
            let mut read = 0;
            while read < config.batch && !config.stop.load(Ordering::Relaxed) {
                let Some(result) = reader.consumer.poll(Duration::ZERO) else { break };
                apply_rebalances(&reader, &config, &changes, &mut partitions, cap.time(), &mut ever_assigned);
                match result {
                    Ok(message) => {
                        read += 1;
                        let partition = message.partition() as u32;
                        let offset = message.offset().max(0) as u64;
                        let record = SourceRecord {
                            key: message.key(),
                            payload: message.payload(),
                            partition,
                            offset,
                            timestamp_ms: message.timestamp().to_millis(),
                        };
                        let Some(state) = partitions.get_mut(&partition) else { continue };
                        if state.end.is_some_and(|end| offset >= end) {
                            state.done = true;
                            continue;
                        }
                        state.last_record = Instant::now();
                        if let Some((time, datum)) = logic(&record) {
                            let time = time.max(*cap.time());
                            state.watermark = state.watermark.max(time);
                            output.session(&cap.delayed(&time)).give(datum);
                            let next = reader.pending.entry(time).or_default().entry(partition).or_default();
                            *next = (*next).max(offset + 1);
                        } else {
                            let time = *cap.time();
                            let next = reader.pending.entry(time).or_default().entry(partition).or_default();
                            *next = (*next).max(offset + 1);
                        }
                        if state.end.is_some_and(|end| offset + 1 >= end) {
                            state.done = true;
                        }
                    }
                    Err(KafkaError::PartitionEOF(partition)) => {
                        // At the end as of now: that is the requested end for CurrentEnd.
                        if let Some(state) = partitions.get_mut(&(partition as u32)) {
                            if config.end == SourceEnd::CurrentEnd {
                                state.done = true;
                            }
                        }
                    }
                    Err(error) => {
                        if is_fatal(&error) {
                            panic!("kafka source: topic '{}': {error}", reader.topic);
                        }
                    }
                }
            }
            let finished = config.stop.load(Ordering::Relaxed)
                || (config.end != SourceEnd::Live && ever_assigned && partitions.values().all(|p| p.done))
                // Explicitly assigned nothing: this worker will never read anything.
                || (!reader.group && ever_assigned && partitions.is_empty());
            if finished {
                capability = None;
                activator.activate();
                return true;
            }
            // The frontier: least watermark of running, non-idle partitions.
            let now = Instant::now();
            let running =
                partitions.values().filter(|p| !p.done && now.duration_since(p.last_record) < config.idle_timeout);
            let frontier =
                running.map(|p| p.watermark).min().or_else(|| partitions.values().map(|p| p.watermark).max());
            if let Some(frontier) = frontier {
                if frontier > *cap.time() {
                    cap.downgrade(&frontier);
                }
            }
            reader.commit_finished(false, CommitMode::Async);
            if read >= config.batch {
                activator.activate();
            } else {
                activator.activate_after(Duration::from_millis(5));
            }
            true
        }
    });
    stream
}

fn is_fatal(error: &KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode::*;
    matches!(
        error,
        KafkaError::MessageConsumption(UnknownTopicOrPartition | TopicAuthorizationFailed | GroupAuthorizationFailed)
    )
}

fn open_reader(
    config: &SourceConfig,
    topic: &str,
    index: usize,
    peers: usize,
    changes: Arc<Mutex<Rebalances>>,
    probe: Option<ProbeHandle<u64>>,
) -> Reader {
    let group = config.group_id.clone();
    let group_id = group.clone().unwrap_or_else(|| "timely-kafka-source".into());
    let defaults: &[(&str, &str)] = &[
        ("group.id", &group_id),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("enable.partition.eof", "true"),
        ("auto.offset.reset", "earliest"),
        ("fetch.wait.max.ms", "10"),
        ("allow.auto.create.topics", "false"),
    ];
    let context = GroupContext { topic: topic.to_string(), changes: changes.clone() };
    let consumer: BaseConsumer<GroupContext> = config
        .kafka
        .config(defaults, PRODUCER_ONLY)
        .create_with_context(context)
        .unwrap_or_else(|e| panic!("kafka source: cannot create consumer: {e}"));
    if group.is_some() {
        consumer.subscribe(&[topic]).unwrap_or_else(|e| panic!("kafka source: subscribe to '{topic}': {e}"));
    } else {
        let partitions = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .ok()
            .and_then(|m| m.topics().iter().find(|t| t.name() == topic).map(|t| t.partitions().len() as u32))
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("kafka source: topic '{topic}' does not exist or has no partitions"));
        let mine: Vec<u32> = (0..partitions).filter(|p| *p as usize % peers == index).collect();
        let mut list = TopicPartitionList::new();
        for partition in &mine {
            let _ = list.add_partition_offset(topic, *partition as i32, Offset::Beginning);
        }
        consumer.assign(&list).unwrap_or_else(|e| panic!("kafka source: assign '{topic}': {e}"));
        if let Ok(mut changes) = changes.lock() {
            changes.assigned.extend(mine);
            changes.settled = true;
        }
    }
    Reader {
        consumer,
        topic: topic.to_string(),
        group: group.is_some(),
        pending: BTreeMap::new(),
        finished: HashMap::new(),
        probe,
    }
}

/// Applies assignment changes: new partitions start at the current frontier.
fn apply_rebalances(
    reader: &Reader,
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
            SourceEnd::Live => None,
            SourceEnd::Offsets(ends) => ends.get(&partition).copied(),
            SourceEnd::CurrentEnd => Some(
                reader
                    .consumer
                    .fetch_watermarks(&reader.topic, partition as i32, Duration::from_secs(30))
                    .map(|(_, high)| high.max(0) as u64)
                    .unwrap_or_else(|e| panic!("kafka source: topic '{}' partition {partition}: {e}", reader.topic)),
            ),
        };
        let done = end == Some(0);
        partitions.insert(partition, PartitionState { watermark: *frontier, last_record: Instant::now(), end, done });
    }
    if let Ok(mut assigned) = config.assigned.lock() {
        *assigned = partitions.keys().copied().collect();
    }
}
