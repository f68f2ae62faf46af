//! The per-worker helper for exactly-once captures, new or resumed.
//!
//! [`capture_exactly_once`] is [`crate::capture::worker::capture`] for a
//! capture with commit points: collective, so every worker gets `Ok` or every
//! worker gets the error. With `resume` each worker continues its partition's
//! stream (see [`crate::capture::worker::resume`]) and every worker learns the same
//! frontier to restart its input from: the meet of every worker's committed
//! frontier. One worker's input may feed another worker's partition (an
//! exchange before the capture), so no input may restart later than the
//! earliest partition needs; each producer then drops what its own
//! partition committed before (messages at times not beyond its own
//! committed frontier, and the progress for them).
//!
//! A worker whose stream is already complete gets a producer that drops
//! everything (every time is committed there) and stays complete, so its
//! peers' inputs may still route records to it and every worker builds the
//! same dataflow; when every stream is complete the resume is refused.

use timely::order::TotalOrder;
use timely::progress::frontier::Antichain;
use timely::progress::Timestamp;
use timely::worker::Worker;

use crate::capture::exactly_once::CommitOptions;
use crate::capture::producer::EventProducer;
use crate::capture::wire::codec::EventCodec;
use crate::capture::worker::resume::{meet, resume, ResumePoint};
use crate::capture::worker::topics::{open_capture_topic, Existing};
use crate::capture::worker::{AnyProducer, CaptureOptions};
use crate::error::{Error, Result, TopicPartition};
use crate::log::{LogBackend, PartitionWriter, WriterHooks};
use crate::runtime::collective::{agree, all_gather};

/// Where an exactly-once capture starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StreamStart {
    /// A new stream (the topic is created or replaced per the options).
    #[default]
    New,
    /// The continuation of the stored stream, after a crash.
    Resume,
}

/// Opens this worker's exactly-once producer: a new stream, or with
/// [`StreamStart::Resume`] the continuation of the stored one. Returns the producer and
/// where it continues: restart the input at
/// [`ResumePoint::restart_from`] (the same on every worker);
/// [`ResumePoint::committed`] is this worker's own committed frontier
/// (empty: its stream was complete). Collective: call it on every worker.
pub fn capture_exactly_once<T, C, K>(
    worker: &mut Worker,
    log: &dyn LogBackend,
    topic: &str,
    options: CaptureOptions<K>,
    exactly_once: CommitOptions,
    start: StreamStart,
) -> Result<(AnyProducer<T, C, K>, ResumePoint<T>)>
where
    T: Timestamp + TotalOrder,
    C: timely::Accountable + 'static,
    K: EventCodec<T, C>,
{
    let (index, peers) = (worker.index() as u32, worker.peers() as u32);
    agree(worker, log.check_exactly_once())?;
    // A resume creates a missing topic (a capture that died before creating
    // it) but never replaces one, and refuses one captured by fewer workers.
    let resume_stream = start == StreamStart::Resume;
    let existing = if resume_stream { Existing::Resume } else { Existing::PerOptions };
    let (producer, mut point) = open_capture_topic(worker, log, topic, &options, existing, |name, partition| {
        if resume_stream {
            match resume::<T, C, K>(log, name, partition, index, peers, exactly_once, options.topic_timeout) {
                Err(Error::AlreadyComplete(at)) => Ok(complete_stream(at)),
                other => other,
            }
        } else {
            let writer = log.writer(name, partition)?;
            let producer = EventProducer::exactly_once(writer, index, peers, exactly_once)?;
            Ok((producer, ResumePoint::fresh()))
        }
    })?;
    if resume_stream {
        let committed: Vec<Antichain<T>> =
            all_gather(worker, point.committed.elements().to_vec()).into_iter().map(Antichain::from).collect();
        if committed.iter().all(|frontier| frontier.is_empty()) {
            return Err(Error::Config(format!(
                "cannot resume '{topic}': every stream is complete (its final commit is stored); nothing to resume"
            )));
        }
        point.restart_from = meet(&committed);
    }
    Ok((producer, point))
}

/// A producer for a worker whose stream is complete: it stores nothing.
fn complete_stream<T, C, K>(at: TopicPartition) -> (AnyProducer<T, C, K>, ResumePoint<T>)
where
    T: Timestamp + TotalOrder,
    C: timely::Accountable + 'static,
    K: EventCodec<T, C>,
{
    let writer: Box<dyn PartitionWriter> = Box::new(Discard(at));
    let producer = EventProducer::already_complete(writer);
    let point = ResumePoint {
        restart_from: Antichain::new(),
        committed: Antichain::new(),
        token: Vec::new(),
        previous_epochs: 0,
        commit_offset: None,
    };
    (producer, point)
}

/// Stores nothing: a complete stream's producer drops every message and
/// writes no progress, so nothing ever reaches it.
struct Discard(TopicPartition);

impl PartitionWriter for Discard {
    fn partition(&self) -> &TopicPartition {
        &self.0
    }
    fn append(&mut self, _record: &[u8]) -> Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

impl WriterHooks for Discard {}
