//! Resuming an exactly-once capture after a crash.
//!
//! [`resume`] opens the partition's writer (on the file log this takes the
//! partition's lock, so a still-running old capture cannot write beside it),
//! reads the stream to find its current epoch and newest commit, writes an
//! epoch record continuing that commit, and reads on until its own epoch
//! record to check it is valid: a zombie (the old process, still writing to
//! Kafka) may have committed again between the scan and the epoch record,
//! which makes the epoch void for every replayer; the resume then tries
//! again from the newer commit. The caller gets a producer and this
//! partition's committed frontier `F_w`.
//!
//! The resumed producer keeps the scan's reader, positioned after its own
//! epoch record. If its final flush fails (on Kafka: an old capture's
//! records among its own, so its offsets are not contiguous), it reads its
//! partition on from there as every replayer does; when the stream is
//! complete with its own final commit, the old capture's records changed
//! nothing and the capture succeeds. On Kafka that reader is a consumer
//! held for the capture's duration (its prefetch is bounded, 2 MiB).
//!
//! **Where the input restarts.** Not at `F_w` in general: if records move
//! between workers before the capture (a keyed `exchange`, a `reduce`, a
//! join), worker `v`'s input feeds worker `w`'s partition too, and a `v`
//! restarted at `F_v > F_w` would never send `w` the records at times in
//! `[F_w, F_v)` again. Every input restarts from the *meet* of every
//! worker's committed frontier ([`meet`]), which is at or before each
//! `F_w`; each producer drops what its own partition already committed
//! (messages at times not beyond its `F_w`). [`resume`] sees one partition
//! only, so its [`ResumePoint::restart_from`] is its own `F_w`;
//! [`crate::capture::worker::capture_exactly_once`] computes the meet
//! collectively and returns it there.

use std::time::{Duration, Instant};

use timely::container::Accountable;
use timely::order::TotalOrder;
use timely::progress::frontier::Antichain;
use timely::progress::Timestamp;

use crate::capture::exactly_once::chain::{Chain, ChainStep};
use crate::capture::exactly_once::commit_state::CommitState;
use crate::capture::exactly_once::CommitOptions;
use crate::capture::producer::EventProducer;
use crate::capture::wire::codec::EventCodec;
use crate::capture::wire::commit::{Commit, EpochLink};
use crate::capture::wire::frame::{self, FrameKind};
use crate::capture::wire::stream::StreamHeader;
use crate::error::{Error, Result, TopicPartition};
use crate::log::{LogBackend, PartitionReader, PartitionWriter};

/// Attempts at writing a valid epoch record before giving up.
const ATTEMPTS: usize = 5;

/// Where a resumed capture continues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePoint<T> {
    /// Restart the input here. A single partition's resume sets this
    /// partition's committed frontier, which is right only when no record
    /// reaches the capture from another worker's input;
    /// [`crate::capture::worker::capture_exactly_once`] sets the meet of
    /// every worker's committed frontier, which is right for any dataflow.
    pub restart_from: Antichain<T>,
    /// This partition's committed frontier (empty: its stream is complete).
    /// The producer drops messages at times not beyond it: they were
    /// committed before.
    pub committed: Antichain<T>,
    /// The resume token stored with the commit continued (empty if none).
    pub token: Vec<u8>,
    /// Epochs of the stream before this one (0: nothing was there to resume,
    /// and a new stream was started).
    pub previous_epochs: u32,
    /// Offset of the commit continued, if any.
    pub commit_offset: Option<u64>,
}

impl<T: Timestamp> ResumePoint<T> {
    /// The point of a stream that starts now: timely's minimum time.
    pub fn fresh() -> Self {
        ResumePoint {
            restart_from: Antichain::from_elem(T::minimum()),
            committed: Antichain::from_elem(T::minimum()),
            token: Vec::new(),
            previous_epochs: 0,
            commit_offset: None,
        }
    }
}

/// A resumed capture: the producer to capture with, and where it continues.
pub(crate) type Resumed<T, C, K> = (EventProducer<T, C, Box<dyn PartitionWriter>, K>, ResumePoint<T>);

/// What a scan of the partition found.
struct Found<T> {
    chain: Chain,
    header: StreamHeader,
    commit: Commit<T>,
}

/// Opens an exactly-once producer for `topic`/`partition` (capture worker
/// `worker` of `peers`) that continues the stream stored there, or starts
/// one if the partition is empty. Refuses a complete stream
/// ([`Error::AlreadyComplete`]: that worker has nothing left to do), a stream
/// captured without exactly-once, and one captured by a different worker
/// count or with different types. `timeout` bounds each wait for the log.
pub(crate) fn resume<T, C, K>(
    log: &dyn LogBackend,
    topic: &str,
    partition: u32,
    worker: u32,
    peers: u32,
    options: CommitOptions,
    timeout: Duration,
) -> Result<Resumed<T, C, K>>
where
    T: Timestamp + TotalOrder,
    C: Accountable + 'static,
    K: EventCodec<T, C>,
{
    let id = TopicPartition::new(topic, partition);
    let mut writer = log.writer(topic, partition)?;
    let mut reader = log.reader(topic, partition, 0)?;
    let Some(mut found) = scan::<T, C, K>(&id, reader.as_mut(), worker, peers, timeout)? else {
        let producer = EventProducer::exactly_once(writer, worker, peers, options)?;
        return Ok((producer, ResumePoint::fresh()));
    };
    for _ in 0..ATTEMPTS {
        if found.chain.is_complete() {
            return Err(Error::AlreadyComplete(id));
        }
        let mut header = StreamHeader::new::<T, C>(K::ID, worker, peers);
        header.created_at_unix_ms = found.header.created_at_unix_ms;
        let link = EpochLink {
            header: header.clone(),
            root_offset: found.chain.root_offset(),
            continues_session: found.chain.current_session(),
            continues_commit: found.chain.last_commit().map(|c| c.seq),
        };
        let commit_offset = found.chain.last_commit().map(|c| c.offset);
        let record = link.to_frame().map_err(|e| Error::Write { at: id.clone(), reason: e.to_string() })?;
        writer.append(&record)?;
        writer.flush()?;
        if confirm::<T, C, K>(&id, reader.as_mut(), &mut found, header.session, timeout)? {
            let frontier = found.commit.frontier();
            let point = ResumePoint {
                restart_from: frontier.clone(),
                committed: frontier.clone(),
                token: found.commit.token.clone(),
                previous_epochs: found.chain.epochs() - 1,
                commit_offset,
            };
            let state = found.commit.state.clone();
            let commits = CommitState::resumed(options, state.clone(), frontier);
            let check = final_check(id.clone(), reader, found.chain.clone(), header.session, timeout);
            let mut producer =
                EventProducer::from_parts(writer, header.session, record.len(), Some(commits)).with_final_check(check);
            producer.continue_from(&state);
            return Ok((producer, point));
        }
    }
    Err(refuse(&id, &format!("another writer kept committing to the partition during {ATTEMPTS} resume attempts (a capture still running?)")))
}

/// The meet of committed frontiers: the earliest times of all of them, a
/// frontier at or before each one (empty frontiers, complete streams,
/// contribute nothing). Restarting every input there regenerates every
/// record any partition still needs, whichever worker's input produces it.
pub(crate) fn meet<'a, T: Timestamp>(frontiers: impl IntoIterator<Item = &'a Antichain<T>>) -> Antichain<T> {
    let mut meet = Antichain::new();
    for frontier in frontiers {
        for time in frontier.elements() {
            meet.insert(time.clone());
        }
    }
    meet
}

fn refuse(id: &TopicPartition, reason: &str) -> Error {
    Error::Config(format!("cannot resume {id}: {reason}"))
}

/// Reads the partition to its end. `None`: it is empty.
fn scan<T, C, K>(
    id: &TopicPartition,
    reader: &mut dyn PartitionReader,
    worker: u32,
    peers: u32,
    timeout: Duration,
) -> Result<Option<Found<T>>>
where
    T: Timestamp,
    K: EventCodec<T, C>,
{
    let Some(record) = reader.poll_stored(timeout)? else { return Ok(None) };
    let offset = record.offset;
    let frame = frame::decode_frame(record.payload).map_err(Error::frame_at(id, offset))?;
    let Some(header) = StreamHeader::of_frame(&frame) else {
        return Err(refuse(id, &format!("the record at offset {offset} is not a stream header")));
    };
    if !frame.header.exactly_once {
        return Err(refuse(
            id,
            "the stream was not captured exactly-once; capture it again exactly-once, overwriting the topic",
        ));
    }
    let header = header.map_err(Error::frame_at(id, offset))?;
    header.check_compatible::<T, C>(K::ID).map_err(|reason| refuse(id, &reason))?;
    if header.peers != peers || header.worker != worker {
        return Err(refuse(
            id,
            &format!(
                "it was captured by worker {} of {}; resume with the same worker count (-w {})",
                header.worker, header.peers, header.peers
            ),
        ));
    }
    let mut found = Found { chain: Chain::new(frame.header.session, offset), header, commit: Commit::initial() };
    while let Some(record) = reader.poll_stored(timeout)? {
        let (offset, payload) = (record.offset, record.payload.to_vec());
        follow::<T, C, K>(id, &mut found, offset, &payload)?;
    }
    Ok(Some(found))
}

/// Feeds one record to the chain; keeps the newest commit's contents.
fn follow<T, C, K>(id: &TopicPartition, found: &mut Found<T>, offset: u64, payload: &[u8]) -> Result<ChainStep>
where
    T: Timestamp,
    K: EventCodec<T, C>,
{
    let frame = frame::decode_frame(payload).map_err(Error::frame_at(id, offset))?;
    let step =
        found.chain.accept(offset, &frame).map_err(|reason| Error::Protocol { at: id.clone(), offset, reason })?;
    if let ChainStep::Commit(_) = step {
        found.commit = Commit::decode::<C, K>(frame.payload).map_err(Error::frame_at(id, offset))?;
    }
    Ok(step)
}

/// After a failed final flush: reads the stream on from the resume's own
/// epoch record (where `reader` and `chain` stand) to its end, as every
/// replayer reads it, and says whether it is complete with a final commit of
/// epoch `session`. An old capture still writing leaves its records among
/// the resume's own, which fails the flush's contiguity check; if it did so
/// only after the resume's last checked commit, the stream is nonetheless
/// complete and exact, and the resume must not report a failure (a further
/// `--resume` would only answer that every stream is complete). A lost
/// record (a gap) or a newer valid epoch (this resume is the old capture
/// now) reads back as not complete with `session`.
fn final_check(
    id: TopicPartition,
    mut reader: Box<dyn PartitionReader>,
    mut chain: Chain,
    session: u64,
    timeout: Duration,
) -> crate::capture::producer::FinalCheck {
    Box::new(move || {
        // Everything this writer sent is acknowledged by now: read up to the
        // end as it stands (an end-of-partition event the reader queued
        // while the capture ran is no end).
        let end = reader.end_offset()?;
        let deadline = Instant::now() + timeout;
        let mut next = 0;
        while next < end {
            let Some(record) = reader.poll(Duration::from_millis(100))? else {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
                continue;
            };
            let offset = record.offset;
            let frame = frame::decode_frame(record.payload).map_err(Error::frame_at(&id, offset))?;
            chain.accept(offset, &frame).map_err(|reason| Error::Protocol { at: id.clone(), offset, reason })?;
            next = offset + 1;
        }
        Ok(chain.is_complete() && chain.current_session() == session)
    })
}

/// Reads on until the epoch record of `session`; whether it is valid.
fn confirm<T, C, K>(
    id: &TopicPartition,
    reader: &mut dyn PartitionReader,
    found: &mut Found<T>,
    session: u64,
    timeout: Duration,
) -> Result<bool>
where
    T: Timestamp,
    K: EventCodec<T, C>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let Some(record) = reader.poll(Duration::from_millis(100))? else { continue };
        let (offset, payload) = (record.offset, record.payload.to_vec());
        let ours = frame::decode_frame(&payload)
            .is_ok_and(|f| f.header.kind == FrameKind::Epoch && f.header.session == session);
        let step = follow::<T, C, K>(id, found, offset, &payload)?;
        if ours {
            return Ok(matches!(step, ChainStep::NewEpoch(_)));
        }
    }
    Err(Error::Write { at: id.clone(), reason: format!("the epoch record written did not appear within {timeout:?}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meet_is_at_or_before_every_frontier_and_skips_complete_streams() {
        let frontiers =
            [Antichain::from_elem(7u64), Antichain::new(), Antichain::from_elem(3), Antichain::from_elem(9)];
        assert_eq!(meet(&frontiers), Antichain::from_elem(3));
        assert_eq!(meet(&[Antichain::<u64>::new(), Antichain::new()]), Antichain::new());
        let pairs = [Antichain::from_elem((2u64, 5u64)), Antichain::from_elem((4, 1))];
        let met = meet(&pairs);
        assert!(pairs.iter().all(|f| f.elements().iter().all(|t| met.less_equal(t))), "{met:?}");
    }
}
