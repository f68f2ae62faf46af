//! `scope.kafka_source(..)`: plain Kafka records (other programs' topics) into timely.
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
//! Exactly once ([`KafkaSource::kafka_source_exactly_once`], for
//! [`crate::connect::transactional`]): no group, offsets from the pipeline's
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
pub(crate) mod metrics;
mod operator;
mod reader;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::dataflow::{ProbeHandle, Scope, Stream};

use crate::error::Error;
use crate::runtime::status::Status;
use binding::Binder;
pub use binding::SourceResume;
pub use config::{time, SourceConfig, SourceEnd, SourceRecord, SourceStats};
use operator::{SourceOperator, SourceState};
use reader::{open_reader, topic_partitions, PartitionState, Rebalances};

/// Kafka topics into a scope, as timely's operators are: a method on the
/// scope (`scope.kafka_source(..)`), each returning the stream and this
/// worker's part's [`Status`].
///
/// ```no_run
/// use timely::dataflow::operators::Inspect;
/// use timely_kafka::connect::source::{time, KafkaSource, SourceConfig, SourceEnd};
/// use timely_kafka::KafkaLog;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let kafka = KafkaLog::new("127.0.0.1:9092", &[])?;
/// timely_kafka::execute(timely::Config::thread(), move |worker| {
///     let config = SourceConfig::new(kafka.clone()).end(SourceEnd::CurrentEnd);
///     worker.dataflow::<u64, _, _>(|scope| {
///         let (lines, _status) = scope.kafka_source(config, "lines", None, |record| {
///             Some((time::offset(record), String::from_utf8_lossy(record.payload?).into_owned()))
///         });
///         lines.inspect(|line| println!("{line}"));
///     });
///     Ok(())
/// })?;
/// # Ok(())
/// # }
/// ```
pub trait KafkaSource<'scope> {
    /// Reads `topic` into a stream of `D` at times chosen by `logic`.
    ///
    /// `logic` returns `None` to drop a record (e.g. one it cannot parse; or
    /// make `D` a `Result` to pass errors on). With a group id, pass the probe
    /// of the dataflow's output as `commit_probe` so offsets are committed only
    /// for finished output; without one, offsets are committed when the stream
    /// completes.
    fn kafka_source<D, L>(
        self,
        config: SourceConfig,
        topic: &str,
        commit_probe: Option<ProbeHandle<u64>>,
        logic: L,
    ) -> (Stream<'scope, u64, Vec<D>>, Status<SourceStats>)
    where
        D: Clone + 'static,
        L: FnMut(&SourceRecord<'_>) -> Option<(u64, D)> + 'static;

    /// [`kafka_source`](KafkaSource::kafka_source) for an exactly-once
    /// pipeline: reads from where `resume` says (see [`SourceResume`]), keeps
    /// every record on its side of the committed frontier, and returns beside
    /// the data the *binding* stream: at each time, `(partition, next offset)`
    /// for the records read at that time, which the exactly-once sink stores
    /// with each commit. Every partition is read by worker `p % peers` (no
    /// consumer group).
    fn kafka_source_exactly_once<D, L>(
        self,
        config: SourceConfig,
        topic: &str,
        resume: SourceResume,
        logic: L,
    ) -> (Stream<'scope, u64, Vec<D>>, BindingStream<'scope>, Status<SourceStats>)
    where
        D: Clone + 'static,
        L: FnMut(&SourceRecord<'_>) -> Option<(u64, D)> + 'static;
}

impl<'scope> KafkaSource<'scope> for Scope<'scope, u64> {
    fn kafka_source<D, L>(
        self,
        config: SourceConfig,
        topic: &str,
        commit_probe: Option<ProbeHandle<u64>>,
        logic: L,
    ) -> (Stream<'scope, u64, Vec<D>>, Status<SourceStats>)
    where
        D: Clone + 'static,
        L: FnMut(&SourceRecord<'_>) -> Option<(u64, D)> + 'static,
    {
        let (stream, _, status) = source(self, config, topic, commit_probe, None, logic);
        (stream, status)
    }

    fn kafka_source_exactly_once<D, L>(
        self,
        config: SourceConfig,
        topic: &str,
        resume: SourceResume,
        logic: L,
    ) -> (Stream<'scope, u64, Vec<D>>, BindingStream<'scope>, Status<SourceStats>)
    where
        D: Clone + 'static,
        L: FnMut(&SourceRecord<'_>) -> Option<(u64, D)> + 'static,
    {
        source(self, config, topic, None, Some(resume), logic)
    }
}

/// The least watermark of a source's running partitions: not done, and
/// not idle. None when none runs.
///
/// Idle is silent for `idle`; exactly once it also needs the partition at
/// the end of what it stores and past its binding: a partition whose first
/// records have not arrived yet (a slow first fetch) is silent, not idle,
/// and a stop must not commit past what it will read.
fn running_least(partitions: &BTreeMap<u32, PartitionState>, binder: Option<&Binder>, idle: Duration) -> Option<u64> {
    let now = Instant::now();
    let running = partitions.iter().filter(|(partition, p)| {
        !p.done
            && (now.duration_since(p.last_record) < idle
                || binder.is_some_and(|b| !p.at_end || b.below(**partition, p.next_offset)))
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
    logic: L,
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
        let exactly_once = resume.is_some();
        let binder = resume.map(Binder::new);
        let mut source = match opened {
            Ok(reader) => Some(SourceOperator {
                reader,
                state: SourceState {
                    config,
                    context,
                    index,
                    status,
                    changes,
                    binder,
                    partitions: BTreeMap::new(),
                    ever_assigned: false,
                    unhealthy_since: None,
                    resets: 0,
                    partitions_checked: Instant::now(),
                    metrics: self::metrics::SourceMetrics::new(&topic),
                    logic,
                },
            }),
            Err(error) => {
                status.fail(&context, error);
                None
            }
        };
        move |_frontiers| {
            let Some(source) = source.as_mut() else {
                // It could not open: tell the sink (maybe in another process).
                if let (Some(cap), true) = (capability.take(), exactly_once) {
                    binding_output.activate().session(&cap.binding).give(binding::failed(index));
                }
                return false;
            };
            source.activate(&mut capability, &mut output, &mut binding_output, &activator)
        }
    });
    (stream, binding_stream, returned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silent(watermark: u64, at_end: bool) -> PartitionState {
        PartitionState {
            watermark,
            last_record: Instant::now() - Duration::from_secs(5),
            end: None,
            end_pending: false,
            done: false,
            next_offset: 0,
            at_end,
        }
    }

    /// The lagging-partition stop that failed once: partition 0 assigned
    /// but silent past the idle timeout because its first fetch was slow,
    /// partition 1 read to time 60. Exactly once, partition 0 still holds
    /// the frontier at 0 (a stop reports it, and nothing past 0 commits);
    /// once at its end it is idle and holds nothing back.
    #[test]
    fn a_silent_partition_is_idle_only_at_its_end_in_an_exactly_once_source() {
        let idle = Duration::from_secs(1);
        let resume = SourceResume {
            frontier: 0,
            offsets: BTreeMap::new(),
            starts: BTreeMap::new(),
            replay_from_start: false,
            topic: None,
        };
        let binder = Binder::new(resume);
        let mut partitions = BTreeMap::from([(0, silent(0, false)), (1, silent(60, true))]);
        assert_eq!(running_least(&partitions, Some(&binder), idle), Some(0));
        // A plain source keeps the silence rule alone.
        assert_eq!(running_least(&partitions, None, idle), None);
        partitions.get_mut(&0).unwrap().at_end = true;
        assert_eq!(running_least(&partitions, Some(&binder), idle), None);
    }
}
