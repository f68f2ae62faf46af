//! One worker's part of a Kafka source, as a named state machine.
//!
//! The operator's closure only feeds activations to [`SourceOperator`]; the
//! state a source keeps between activations (its consumer, the partitions
//! it reads and how far, the binding of offsets to times, how long the
//! broker has been silent) is in documented fields, and each thing an
//! activation does is one method: follow rebalances, read a batch, check
//! the broker and the partition count, then end or advance the frontier.
//! Every failure leaves through [`SourceOperator::fail`].

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::CommitMode;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::{OutputBuilder, OutputBuilderSession};
use timely::scheduling::Activator;

use super::binding::{self, Binder};
use super::config::{SourceConfig, SourceEnd, SourceRecord, SourceStats};
use super::fetch_end::fetched_high_watermark;
use super::reader::{
    apply_rebalances, is_fatal, topic_partitions, GroupContext, PartitionState, Pending, Reader, Rebalances,
};
use super::{added_partitions, running_least, Capabilities, MAX_RESEEKS};
use crate::connect::status::reason;
use crate::error::Error;
use crate::runtime::status::Status;
use rdkafka::consumer::BaseConsumer;

/// The source's data output.
pub(super) type DataOutput<D> = OutputBuilder<u64, CapacityContainerBuilder<Vec<D>>>;
/// The source's binding output: `(partition, next offset)` reports.
pub(super) type BindingOutput = OutputBuilder<u64, CapacityContainerBuilder<Vec<(u32, u64)>>>;
type DataOut<'a, D> = OutputBuilderSession<'a, u64, CapacityContainerBuilder<Vec<D>>>;
type BindingOut<'a> = OutputBuilderSession<'a, u64, CapacityContainerBuilder<Vec<(u32, u64)>>>;

/// A running source on one worker: its consumer, and what it keeps
/// between activations.
pub(super) struct SourceOperator<L> {
    pub(super) reader: Reader,
    pub(super) state: SourceState<L>,
}

/// What a source keeps between activations, beside its consumer.
pub(super) struct SourceState<L> {
    pub(super) config: SourceConfig,
    /// "kafka source of topic 'T'": what its failures are prefixed with.
    pub(super) context: String,
    /// This worker's index (named in the failure reports to the sink).
    pub(super) index: usize,
    pub(super) status: Status<SourceStats>,
    /// Partition assignments and revocations the consumer's rebalance
    /// callback queued (a consumer group), applied at each activation.
    pub(super) changes: Arc<Mutex<Rebalances>>,
    /// Exactly once: binds offsets to times, on the committed frontier's
    /// side of each record, and reports the binding to the sink.
    pub(super) binder: Option<Binder>,
    /// The partitions read now, and how far each has got.
    pub(super) partitions: BTreeMap<u32, PartitionState>,
    /// Whether any partition was ever assigned: before that, no end.
    pub(super) ever_assigned: bool,
    /// Since when errors arrived and no record did (the broker may be gone).
    pub(super) unhealthy_since: Option<Instant>,
    /// Offset resets answered by seeking (exactly once), bounded.
    pub(super) resets: u32,
    /// When the topic's partition count was last checked (exactly once).
    pub(super) partitions_checked: Instant,
    /// Records read and lag per partition, for a metrics recorder.
    pub(super) metrics: super::metrics::SourceMetrics,
    /// The user's `logic`: a record to `(time, datum)`, or dropped.
    pub(super) logic: L,
}

impl<L> SourceOperator<L> {
    /// One activation; returns whether the operator wants to run again.
    pub(super) fn activate<D>(
        &mut self,
        capability: &mut Option<Capabilities>,
        output: &mut DataOutput<D>,
        binding_output: &mut BindingOutput,
        activator: &Activator,
    ) -> bool
    where
        D: Clone + 'static,
        L: FnMut(&SourceRecord<'_>) -> Option<(u64, D)>,
    {
        if self.state.status.failed_anywhere() {
            // The closed frontier finished nothing: commit no offset.
            self.reader.failed = true;
            *capability = None;
            return false;
        }
        let Some(cap) = capability.as_mut() else { return self.commit_after_release(activator) };
        let mut output = output.activate();
        let binding_output = &mut binding_output.activate();
        self.state.rebalance(*cap.time());
        let read = match self.read_batch(cap, &mut output) {
            Ok(read) => read,
            Err(error) => return self.fail(error, capability, binding_output),
        };
        self.state.metrics.flush(&self.reader.consumer);
        if let Some(binder) = self.state.binder.as_mut() {
            for (time, report) in binder.drain() {
                binding_output.session(&cap.binding.delayed(&time)).give(report);
            }
        }
        if let Err(error) = self.check_broker().and_then(|()| self.check_partition_count()) {
            return self.fail(error, capability, binding_output);
        }
        self.end_or_advance(capability, binding_output, activator, read)
    }

    /// Released: waits for the output to finish, then commits its offsets.
    fn commit_after_release(&mut self, activator: &Activator) -> bool {
        if self.reader.probe.as_ref().is_none_or(|p| p.done()) {
            self.reader.commit_finished(true, CommitMode::Sync);
            return false;
        }
        self.reader.commit_finished(false, CommitMode::Async);
        activator.activate_after(Duration::from_millis(10));
        true
    }

    /// Reads at most a batch of records into `output`; returns how many
    /// were read, or the error that ends the source.
    fn read_batch<D>(&mut self, cap: &Capabilities, output: &mut DataOut<'_, D>) -> Result<usize, Error>
    where
        D: Clone + 'static,
        L: FnMut(&SourceRecord<'_>) -> Option<(u64, D)>,
    {
        let mut read = 0;
        while read < self.state.config.batch && !self.state.config.stop.load(Ordering::Relaxed) {
            let Some(result) = self.reader.consumer.poll(Duration::ZERO) else { break };
            self.state.rebalance(*cap.time());
            if !matches!(result, Err(ref error) if !matches!(error, KafkaError::PartitionEOF(_))) {
                self.state.unhealthy_since = None;
            }
            match result {
                Ok(message) => {
                    read += 1;
                    let record = SourceRecord {
                        key: message.key(),
                        payload: message.payload(),
                        partition: message.partition() as u32,
                        offset: message.offset().max(0) as u64,
                        timestamp_ms: message.timestamp().to_millis(),
                    };
                    self.state.metrics.read(record.partition, record.offset, record.timestamp_ms);
                    let reader = (&*self.reader.consumer, self.reader.topic.as_str(), &mut self.reader.pending);
                    self.state.take(&record, cap, output, reader);
                }
                Err(KafkaError::PartitionEOF(partition)) => {
                    // The position reached the high watermark of the latest
                    // fetch, which is at or past CurrentEnd's end (fetch_end.rs).
                    self.state.metrics.at_end(partition as u32);
                    if let Some(state) = self.state.partitions.get_mut(&(partition as u32)) {
                        state.at_end = true;
                        if self.state.config.end == SourceEnd::CurrentEnd {
                            state.done = true;
                        }
                    }
                }
                Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))
                    if self.state.binder.is_some() && self.state.resets < MAX_RESEEKS =>
                {
                    self.state.resets += 1;
                    let topic = &self.reader.topic;
                    self.state.status.warn(format!("kafka source of topic '{topic}': offset reset asked; seeking"));
                    let next: Vec<(u32, u64)> = self
                        .state
                        .partitions
                        .iter()
                        .filter(|(_, p)| !p.done)
                        .map(|(id, p)| (*id, p.next_offset))
                        .collect();
                    self.reader.reseek(&next, self.state.config.broker_timeout)?;
                }
                Err(error) if is_fatal(&error) => {
                    let undecodable = error.rdkafka_error_code().is_some_and(crate::error::undecodable);
                    let what = if undecodable { "records cannot be decoded" } else { "consumer" };
                    return Err(Error::kafka_from(what, &error));
                }
                Err(error) => {
                    self.state.status.warn(format!("kafka source of topic '{}': {error}", self.reader.topic));
                    self.state.unhealthy_since.get_or_insert_with(Instant::now);
                }
            }
        }
        Ok(read)
    }

    /// Errors and no record for the whole broker timeout: is the broker
    /// there at all? An error if it does not answer.
    fn check_broker(&mut self) -> Result<(), Error> {
        let Some(since) =
            self.state.unhealthy_since.filter(|since| since.elapsed() >= self.state.config.broker_timeout)
        else {
            return Ok(());
        };
        let probe_timeout = self.state.config.broker_timeout.min(Duration::from_secs(5));
        match topic_partitions(&self.reader.consumer, &self.reader.topic, probe_timeout) {
            Ok(_) => {
                self.state.unhealthy_since = None;
                Ok(())
            }
            Err(error) => {
                let reason = format!("broker unreachable for {:?} ({})", since.elapsed(), reason(&error));
                Err(Error::kafka(reason))
            }
        }
    }

    /// Exactly once: an error if partitions were added to the topic (they
    /// would go unread while it runs).
    fn check_partition_count(&mut self) -> Result<(), Error> {
        if self.state.binder.is_none() || self.state.partitions_checked.elapsed() < self.state.config.partition_check {
            return Ok(());
        }
        self.state.partitions_checked = Instant::now();
        match added_partitions(&self.reader, self.state.config.broker_timeout) {
            Some(added) => Err(added),
            None => Ok(()),
        }
    }

    /// Ends the source for good: the failure is recorded, no offset is
    /// committed, an exactly-once sink is told, the capability released.
    fn fail(
        &mut self,
        error: Error,
        capability: &mut Option<Capabilities>,
        binding_output: &mut BindingOut<'_>,
    ) -> bool {
        self.state.status.fail(&self.state.context, error);
        self.reader.failed = true;
        if let (Some(cap), true) = (capability.as_ref(), self.state.binder.is_some()) {
            binding_output.session(&cap.binding).give(binding::failed(self.state.index));
        }
        *capability = None;
        false
    }

    /// At the end of the input (or when stopped) releases the capability,
    /// telling an exactly-once sink how far it got; otherwise advances the
    /// frontier and asks to run again.
    fn end_or_advance(
        &mut self,
        capability: &mut Option<Capabilities>,
        binding_output: &mut BindingOut<'_>,
        activator: &Activator,
        read: usize,
    ) -> bool {
        let cap = capability.as_mut().expect("a running source holds its capability");
        let ended = (self.state.config.end != SourceEnd::Live
            && self.state.ever_assigned
            && self.state.partitions.values().all(|p| p.done))
            // Explicitly assigned nothing: this worker will never read anything.
            || (!self.reader.group && self.state.ever_assigned && self.state.partitions.is_empty());
        let stopped = self.state.config.stop.load(Ordering::Relaxed);
        // The frontier: least watermark of running, non-idle partitions
        // (exactly once: a partition below its binding is never idle);
        // with none running, the greatest.
        let running = running_least(&self.state.partitions, self.state.binder.as_ref(), self.state.config.idle_timeout);
        let greatest = self.state.partitions.values().map(|p| p.watermark).max();
        let frontier = running.or(greatest).unwrap_or(0).max(*cap.time());
        if ended || stopped {
            if self.state.binder.is_some() {
                if let Some(reached) = running.filter(|_| stopped && !ended) {
                    // No end of input, and a partition still reading (idle
                    // ones hold no frontier back, as while running): the
                    // sink commits no further than it reached.
                    binding_output.session(&cap.binding).give(binding::stopped_at(reached.max(*cap.time())));
                }
                // Ended, not failed: the sink may commit the closed frontier.
                binding_output.session(&cap.binding).give(binding::clean_end(self.state.index));
            }
            if !self.state.status.failed_anywhere() {
                self.state.status.set_complete();
            }
            *capability = None;
            activator.activate();
            return true;
        }
        if frontier > *cap.time() {
            cap.downgrade(&frontier);
        }
        self.reader.commit_finished(false, CommitMode::Async);
        if read >= self.state.config.batch {
            activator.activate();
        } else {
            activator.activate_after(Duration::from_millis(5));
        }
        true
    }
}

impl<L> SourceState<L> {
    /// Applies the queued rebalances; new partitions start at `time`.
    fn rebalance(&mut self, time: u64) {
        apply_rebalances(&self.config, &self.changes, &mut self.partitions, &time, &mut self.ever_assigned);
        if let Some(binder) = self.binder.as_mut() {
            binder.initialize(&mut self.partitions);
        }
    }

    /// One record: past its partition's end it ends the partition;
    /// otherwise `logic` gives it a time (exactly once: bound to its
    /// offset) and it goes to `output`.
    fn take<D>(
        &mut self,
        record: &SourceRecord<'_>,
        cap: &Capabilities,
        output: &mut DataOut<'_, D>,
        reader: (&BaseConsumer<GroupContext>, &str, &mut Pending),
    ) where
        D: Clone + 'static,
        L: FnMut(&SourceRecord<'_>) -> Option<(u64, D)>,
    {
        let (consumer, topic, pending) = reader;
        let (partition, offset) = (record.partition, record.offset);
        let Some(state) = self.partitions.get_mut(&partition) else { return };
        state.at_end = false;
        if state.end_pending {
            // The first record since assignment: a fetch response has set the end.
            let high = fetched_high_watermark(consumer, topic, partition);
            state.end = high.map(|high| high.max(offset + 1));
            state.end_pending = state.end.is_none();
        }
        if state.end.is_some_and(|end| offset >= end) {
            state.done = true;
            return;
        }
        state.last_record = Instant::now();
        state.next_offset = offset + 1;
        self.status.counters().records.fetch_add(1, Ordering::Relaxed);
        let emitted = (self.logic)(record);
        let time = emitted.as_ref().map_or(*cap.time(), |(time, _)| *time).max(*cap.time());
        let time = match self.binder.as_mut() {
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
        let next = pending.entry(time).or_default().entry(partition).or_default();
        *next = (*next).max(offset + 1);
        if state.end.is_some_and(|end| offset + 1 >= end) {
            state.done = true;
        }
    }
}
