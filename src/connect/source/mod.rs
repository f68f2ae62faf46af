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
//! `SourceEnd::CurrentEnd` takes each partition's end from the first fetch
//! response after assignment, not from ListOffsets (`fetch_end.rs` says why).
//!
//! Offsets (with a group id and a probe): a partition's offset is committed
//! only once the probe's frontier has passed the times of every record before
//! it, so a restarted job resumes without losing or re-emitting finished
//! output. Records emitted but not yet finished when a job dies are consumed
//! again after the restart (at-least-once for unfinished work).
//!
//! Exactly once ([`kafka_source_exactly_once`], for
//! [`crate::connect::exactly_once`]): no group, offsets from the pipeline's
//! last commit, times kept on their side of its frontier, and a second
//! stream reporting which offsets each time covers (`binding.rs`).
//!
//! Failures never panic (see `connect/status.rs`): a consumer that
//! cannot be created, subscribe or assign, a missing topic, a fatal consumer
//! error, or a broker that stays unreachable (errors and no record for
//! `broker_timeout`, and then no metadata answer) is recorded in
//! the source's [`Status`] and closes the source's frontier; so does a failure
//! anywhere else in the computation. After a failure no offset is committed:
//! the closed frontier finished nothing. Transient errors are counted and
//! printed once each.

pub(crate) mod binding;
mod config;
mod fetch_end;
mod reader;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::CommitMode;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::dataflow::{ProbeHandle, Scope, Stream};

use crate::connect::status::reason;
use crate::error::Error;
use crate::runtime::status::Status;
use binding::Binder;
pub use binding::{SourceResume, CLEAN_END};
pub use config::{time, SourceConfig, SourceEnd, SourceRecord, SourceStats};
use fetch_end::fetched_high_watermark;
use reader::{apply_rebalances, is_fatal, open_reader, topic_partitions, PartitionState, Rebalances};

/// Reads `topic` into a stream of `D` at times chosen by `logic`.
///
/// `logic` returns `None` to drop a record (e.g. one it cannot parse; or
/// make `D` a `Result` to pass errors on). With a group id, pass the probe
/// of the dataflow's output as `commit_probe` so offsets are committed only
/// for finished output; without one, offsets are committed when the stream
/// completes. Returns the stream and this worker's part's [`Status`].
pub fn kafka_source<'scope, D, L>(
    scope: Scope<'scope, u64>,
    config: SourceConfig,
    topic: &str,
    commit_probe: Option<ProbeHandle<u64>>,
    logic: L,
) -> (Stream<'scope, u64, Vec<D>>, Status<SourceStats>)
where
    D: Clone + 'static,
    L: FnMut(&SourceRecord<'_>) -> Option<(u64, D)> + 'static,
{
    let (stream, _, status) = source(scope, config, topic, commit_probe, None, logic);
    (stream, status)
}

/// [`kafka_source`] for an exactly-once pipeline: reads from where `resume`
/// says (see [`SourceResume`]), keeps every record on its side of the
/// committed frontier, and returns beside the data the *binding* stream: at
/// each time, `(partition, next offset)` for the records read at that time,
/// which the exactly-once sink stores with each commit. Every partition is
/// read by worker `p % peers` (no consumer group).
pub fn kafka_source_exactly_once<'scope, D, L>(
    scope: Scope<'scope, u64>,
    config: SourceConfig,
    topic: &str,
    resume: SourceResume,
    logic: L,
) -> (Stream<'scope, u64, Vec<D>>, BindingStream<'scope>, Status<SourceStats>)
where
    D: Clone + 'static,
    L: FnMut(&SourceRecord<'_>) -> Option<(u64, D)> + 'static,
{
    source(scope, config, topic, None, Some(resume), logic)
}

/// The least watermark of a source's running partitions: not done, and
/// not idle (a partition below its binding is never idle). None when none
/// runs.
fn running_least(partitions: &BTreeMap<u32, PartitionState>, binder: Option<&Binder>, idle: Duration) -> Option<u64> {
    let now = Instant::now();
    let running = partitions.iter().filter(|(partition, p)| {
        !p.done
            && (now.duration_since(p.last_record) < idle || binder.is_some_and(|b| b.below(**partition, p.next_offset)))
    });
    running.map(|(_, p)| p.watermark).min()
}

/// Partitions added to an explicitly assigned topic since it was opened, as
/// the error to fail with (none when the broker does not answer at once:
/// the next check asks again).
fn added_partitions(reader: &reader::Reader, timeout: Duration) -> Option<Error> {
    let was = reader.partitions?;
    let now = topic_partitions(&reader.consumer, &reader.topic, timeout.min(Duration::from_secs(2))).ok()?;
    (now > was).then(|| {
        Error::kafka(format!(
            "partitions were added while the pipeline ran ({now}, was {was}); stopping so that none goes unread: \
             the next start reads them"
        ))
    })
}

/// How many offset resets an exactly-once source answers by seeking
/// before it fails (a reset that keeps coming back is not a reconnect).
const MAX_RESEEKS: u32 = 100;

/// The binding reports of an exactly-once source: at time `t`,
/// `(partition, next offset)` after the records read at `t`.
pub type BindingStream<'scope> = StreamVec<'scope, u64, (u32, u64)>;

/// Both capabilities of a running source, always at the same time.
struct Capabilities {
    data: Capability<u64>,
    binding: Capability<u64>,
}

impl Capabilities {
    fn time(&self) -> &u64 {
        self.data.time()
    }
    fn downgrade(&mut self, time: &u64) {
        self.data.downgrade(time);
        self.binding.downgrade(time);
    }
}

fn source<'scope, D, L>(
    scope: Scope<'scope, u64>,
    config: SourceConfig,
    topic: &str,
    commit_probe: Option<ProbeHandle<u64>>,
    resume: Option<SourceResume>,
    mut logic: L,
) -> (Stream<'scope, u64, Vec<D>>, BindingStream<'scope>, Status<SourceStats>)
where
    D: Clone + 'static,
    L: FnMut(&SourceRecord<'_>) -> Option<(u64, D)> + 'static,
{
    let (index, peers) = (scope.index(), scope.peers());
    let topic = topic.to_string();
    let status = Status::<SourceStats>::default();
    let returned = status.clone();
    let mut builder = OperatorBuilder::new(format!("KafkaSource({topic})"), scope);
    let info = builder.operator_info();
    let (output, stream) = builder.new_output::<Vec<D>>();
    let mut output = OutputBuilder::<_, CapacityContainerBuilder<Vec<D>>>::from(output);
    let (binding_output, binding_stream) = builder.new_output::<Vec<(u32, u64)>>();
    let mut binding_output = OutputBuilder::<_, CapacityContainerBuilder<Vec<(u32, u64)>>>::from(binding_output);
    // `build_reschedule`: after releasing its capability the operator stays
    // alive, and its consumer in the group, until its last offsets commit.
    builder.build_reschedule(move |mut capabilities| {
        let binding = capabilities.pop().expect("two outputs, two capabilities");
        let data = capabilities.pop().expect("two outputs, two capabilities");
        let activator = scope.activator_for(info.address);
        let changes = Arc::new(Mutex::new(Rebalances::default()));
        let context = format!("kafka source of topic '{topic}'");
        let mut capability = Some(Capabilities { data, binding });
        let opened = open_reader(&config, &topic, index, peers, changes.clone(), commit_probe, resume.as_ref());
        let mut reader = match opened {
            Ok(reader) => Some(reader),
            Err(error) => {
                status.fail(&context, error);
                None
            }
        };
        let mut binder = resume.map(Binder::new);
        let mut partitions: BTreeMap<u32, PartitionState> = BTreeMap::new();
        let mut ever_assigned = false;
        // Since when errors arrived and no record did (the broker may be gone).
        let mut unhealthy_since: Option<Instant> = None;
        // Offset resets answered by seeking (exactly once), bounded.
        let mut resets = 0;
        let mut partitions_checked = Instant::now();
        move |_frontiers| {
            let Some(reader) = reader.as_mut() else {
                // It could not open: tell the sink (maybe in another process).
                if let (Some(cap), true) = (capability.take(), binder.is_some()) {
                    binding_output.activate().session(&cap.binding).give(binding::failed(index));
                }
                return false;
            };
            if status.failed_anywhere() {
                // The closed frontier finished nothing: commit no offset.
                reader.failed = true;
                capability = None;
                return false;
            }
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
            let mut binding_output = binding_output.activate();
            let rebalance = |partitions: &mut _, frontier, ever_assigned: &mut _, binder: &mut Option<Binder>| {
                apply_rebalances(&config, &changes, partitions, frontier, ever_assigned);
                if let Some(binder) = binder.as_mut() {
                    binder.initialize(partitions);
                }
            };
            rebalance(&mut partitions, cap.time(), &mut ever_assigned, &mut binder);
            let mut read = 0;
            while read < config.batch && !config.stop.load(Ordering::Relaxed) {
                let Some(result) = reader.consumer.poll(Duration::ZERO) else { break };
                rebalance(&mut partitions, cap.time(), &mut ever_assigned, &mut binder);
                if !matches!(result, Err(ref error) if !matches!(error, KafkaError::PartitionEOF(_))) {
                    unhealthy_since = None;
                }
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
                        if state.end_pending {
                            // The first record since assignment: a fetch response has set the end.
                            let high = fetched_high_watermark(&reader.consumer, &reader.topic, partition);
                            state.end = high.map(|high| high.max(offset + 1));
                            state.end_pending = state.end.is_none();
                        }
                        if state.end.is_some_and(|end| offset >= end) {
                            state.done = true;
                            continue;
                        }
                        state.last_record = Instant::now();
                        state.next_offset = offset + 1;
                        status.counters().records.fetch_add(1, Ordering::Relaxed);
                        let emitted = logic(&record);
                        let time = emitted.as_ref().map_or(*cap.time(), |(time, _)| *time).max(*cap.time());
                        let time = match binder.as_mut() {
                            Some(binder) => {
                                // Monotone in offset, then on its side of the committed frontier.
                                let time = binder.time(partition, offset, time.max(state.watermark));
                                binder.report(time, partition, offset);
                                time
                            }
                            None => time,
                        };
                        state.watermark = state.watermark.max(time);
                        if let Some((_, datum)) = emitted {
                            output.session(&cap.data.delayed(&time)).give(datum);
                        }
                        let next = reader.pending.entry(time).or_default().entry(partition).or_default();
                        *next = (*next).max(offset + 1);
                        if state.end.is_some_and(|end| offset + 1 >= end) {
                            state.done = true;
                        }
                    }
                    Err(KafkaError::PartitionEOF(partition)) => {
                        // The position reached the high watermark of the latest
                        // fetch, which is at or past CurrentEnd's end (fetch_end.rs).
                        if let Some(state) = partitions.get_mut(&(partition as u32)) {
                            if config.end == SourceEnd::CurrentEnd {
                                state.done = true;
                            }
                        }
                    }
                    Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))
                        if binder.is_some() && resets < MAX_RESEEKS =>
                    {
                        resets += 1;
                        status.warn(format!("kafka source of topic '{}': offset reset asked; seeking", reader.topic));
                        let next: Vec<(u32, u64)> =
                            partitions.iter().filter(|(_, p)| !p.done).map(|(id, p)| (*id, p.next_offset)).collect();
                        if let Err(error) = reader.reseek(&next, config.broker_timeout) {
                            status.fail(&context, error);
                            reader.failed = true;
                            binding_output.session(&cap.binding).give(binding::failed(index));
                            capability = None;
                            return false;
                        }
                    }
                    Err(error) if is_fatal(&error) => {
                        let undecodable = error.rdkafka_error_code().is_some_and(crate::error::undecodable);
                        let what = if undecodable { "records cannot be decoded" } else { "consumer" };
                        status.fail(&context, Error::kafka_from(what, &error));
                        reader.failed = true;
                        if binder.is_some() {
                            binding_output.session(&cap.binding).give(binding::failed(index));
                        }
                        capability = None;
                        return false;
                    }
                    Err(error) => {
                        status.warn(format!("kafka source of topic '{}': {error}", reader.topic));
                        unhealthy_since.get_or_insert_with(Instant::now);
                    }
                }
            }
            if let Some(binder) = binder.as_mut() {
                for (time, report) in binder.drain() {
                    binding_output.session(&cap.binding.delayed(&time)).give(report);
                }
            }
            if let Some(since) = unhealthy_since.filter(|since| since.elapsed() >= config.broker_timeout) {
                // Errors and no record for the whole timeout: is the broker there at all?
                let probe_timeout = config.broker_timeout.min(Duration::from_secs(5));
                match topic_partitions(&reader.consumer, &reader.topic, probe_timeout) {
                    Ok(_) => unhealthy_since = None,
                    Err(error) => {
                        let reason = format!("broker unreachable for {:?} ({})", since.elapsed(), reason(&error));
                        status.fail(&context, Error::kafka(reason));
                        reader.failed = true;
                        if binder.is_some() {
                            binding_output.session(&cap.binding).give(binding::failed(index));
                        }
                        capability = None;
                        return false;
                    }
                }
            }
            if binder.is_some() && partitions_checked.elapsed() >= config.partition_check {
                partitions_checked = Instant::now();
                if let Some(added) = added_partitions(reader, config.broker_timeout) {
                    status.fail(&context, added);
                    reader.failed = true;
                    binding_output.session(&cap.binding).give(binding::failed(index));
                    capability = None;
                    return false;
                }
            }
            let ended = (config.end != SourceEnd::Live && ever_assigned && partitions.values().all(|p| p.done))
                // Explicitly assigned nothing: this worker will never read anything.
                || (!reader.group && ever_assigned && partitions.is_empty());
            let stopped = config.stop.load(Ordering::Relaxed);
            // The frontier: least watermark of running, non-idle partitions
            // (exactly once: a partition below its binding is never idle);
            // with none running, the greatest.
            let running = running_least(&partitions, binder.as_ref(), config.idle_timeout);
            let greatest = partitions.values().map(|p| p.watermark).max();
            let frontier = running.or(greatest).unwrap_or(0).max(*cap.time());
            if ended || stopped {
                if binder.is_some() {
                    if let Some(reached) = running.filter(|_| stopped && !ended) {
                        // No end of input, and a partition still reading (idle
                        // ones hold no frontier back, as while running): the
                        // sink commits no further than it reached.
                        binding_output.session(&cap.binding).give(binding::stopped_at(reached.max(*cap.time())));
                    }
                    // Ended, not failed: the sink may commit the closed frontier.
                    binding_output.session(&cap.binding).give(binding::clean_end(index));
                }
                if !status.failed_anywhere() {
                    status.set_complete();
                }
                capability = None;
                activator.activate();
                return true;
            }
            if frontier > *cap.time() {
                cap.downgrade(&frontier);
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
    (stream, binding_stream, returned)
}
