//! Replaying an exactly-once stream: only what commits cover reaches timely.
//!
//! The reader alternates between two passes over the partition, so replay
//! memory does not grow with the uncommitted tail however long it is:
//!
//! - **scan**: read forward, following the epochs ([`Chain`]), until the next
//!   commit of the current epoch. Events are not decoded; the first record
//!   that may hold an undelivered message is remembered (`deliver_from`).
//! - **deliver**: seek back to `deliver_from` and read up to the commit,
//!   handing timely every message the commit covers that an earlier commit
//!   did not, then one progress event: the commit's state minus the
//!   previously delivered commit's state. Messages at times the commit does
//!   not cover stay where they are; the next delivery starts at the first of
//!   them.
//!
//! Messages go out before the progress that passes their times, and never
//! behind the delivered frontier (they are at times beyond the previous
//! commit), so timely sees a valid event sequence at every moment. After a
//! valid epoch record the old epoch's held records are forgotten: the
//! resumed capture regenerates the times they were at.

use std::time::Duration;

use timely::dataflow::operators::capture::Event;
use timely::progress::frontier::Antichain;
use timely::progress::{ChangeBatch, Timestamp};

use crate::capture::chain::{Chain, ChainStep, CommitSeen};
use crate::capture::chunks::ChunkAssembler;
use crate::capture::codec::EventCodec;
use crate::capture::commit::{committed_at, Commit};
use crate::capture::frame::{self, FrameKind};
use crate::error::{Error, PartitionId, Result};
use crate::log::PartitionReader;

/// How long a delivery pass waits for a record it knows is stored.
const REREAD_TIMEOUT: Duration = Duration::from_millis(200);

/// The commit replay delivered last.
struct Delivered<T> {
    offset: Option<u64>,
    state: Vec<(T, i64)>,
    frontier: Antichain<T>,
}

/// A commit being delivered.
struct Target<T> {
    seen: CommitSeen,
    commit: Commit<T>,
    frontier: Antichain<T>,
}

enum Phase<T> {
    Scan,
    /// Re-reading up to the target commit; `next_held` is the first record
    /// read in this pass that holds a message the target does not cover,
    /// `chunk_start` the offset of the event being reassembled.
    Deliver {
        target: Target<T>,
        next_held: Option<u64>,
        last_seq: u64,
        chunk_start: u64,
    },
    Done,
}

/// What one call produced.
pub enum Next<T, C> {
    /// An event for timely.
    Event(Event<T, C>),
    /// No record available now.
    Idle,
    /// A record was read but produced nothing for timely (call again).
    Busy,
}

/// The exactly-once replay of one partition.
pub struct CommittedReplay<T> {
    id: PartitionId,
    chain: Chain,
    phase: Phase<T>,
    delivered: Delivered<T>,
    deliver_from: Option<u64>,
    chunks: ChunkAssembler,
}

impl<T: Timestamp> CommittedReplay<T> {
    /// Replay of the exactly-once stream whose root header (session
    /// `session`) was read at `offset`; the reader is positioned after it.
    pub fn new(id: PartitionId, session: u64, offset: u64) -> Self {
        let initial = Commit::<T>::initial();
        CommittedReplay {
            id,
            chain: Chain::new(session, offset),
            phase: Phase::Scan,
            delivered: Delivered { offset: None, frontier: initial.frontier(), state: initial.state },
            deliver_from: None,
            chunks: ChunkAssembler::default(),
        }
    }

    /// Whether the final commit has been delivered.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The frontier of the commits delivered so far.
    pub fn frontier(&self) -> &Antichain<T> {
        &self.delivered.frontier
    }

    /// Ends the replay early (a failure): the progress retracting every
    /// count delivered so far, so no worker waits for this stream.
    pub fn retract_all(&mut self) -> Vec<(T, i64)> {
        self.phase = Phase::Done;
        self.delivered.frontier = Antichain::new();
        std::mem::take(&mut self.delivered.state).into_iter().map(|(t, d)| (t, -d)).collect()
    }

    /// Why the current epoch stopped counting (records lost after its last
    /// commit), if it did.
    pub fn broken(&self) -> Option<&str> {
        self.chain.broken()
    }

    /// Epochs followed so far.
    pub fn epochs(&self) -> u32 {
        self.chain.epochs()
    }

    fn error(&self, offset: u64, reason: impl Into<String>) -> Error {
        Error::Protocol { at: self.id.clone(), offset, reason: reason.into() }
    }

    /// Reads at most one record and says what came of it. `wait` bounds the
    /// wait for a new record while scanning.
    pub fn step<C, K: EventCodec<T, C>>(
        &mut self,
        reader: &mut dyn PartitionReader,
        wait: Duration,
        read: &mut dyn FnMut(usize),
    ) -> Result<Next<T, C>> {
        match self.phase {
            Phase::Done => Ok(Next::Idle),
            Phase::Scan => self.scan::<C, K>(reader, wait, read),
            Phase::Deliver { .. } => self.deliver::<C, K>(reader),
        }
    }

    fn scan<C, K: EventCodec<T, C>>(
        &mut self,
        reader: &mut dyn PartitionReader,
        wait: Duration,
        read: &mut dyn FnMut(usize),
    ) -> Result<Next<T, C>> {
        let Some(record) = reader.poll(wait)? else { return Ok(Next::Idle) };
        read(record.payload.len());
        let offset = record.offset;
        let frame = frame::decode_frame(record.payload).map_err(|source| Error::Frame {
            at: self.id.clone(),
            offset,
            source,
        })?;
        let step = self.chain.accept(offset, &frame).map_err(|reason| self.error(offset, reason))?;
        match step {
            ChainStep::Ignored => Ok(Next::Busy),
            ChainStep::Data => {
                self.deliver_from.get_or_insert(offset);
                Ok(Next::Busy)
            }
            ChainStep::Broken(_) => {
                // Nothing more of this epoch will be delivered; a resume
                // continues its last commit (or the idle timeout reports it).
                self.deliver_from = None;
                Ok(Next::Busy)
            }
            ChainStep::NewEpoch(_) => {
                // The old epoch's uncommitted records are dropped: the new
                // epoch regenerates everything beyond the commit it continues.
                self.deliver_from = None;
                Ok(Next::Busy)
            }
            ChainStep::Commit(seen) => {
                let commit = Commit::decode::<C, K>(frame.payload).map_err(|source| Error::Frame {
                    at: self.id.clone(),
                    offset,
                    source,
                })?;
                let frontier = commit.frontier();
                if seen.is_final != frontier.is_empty() {
                    return Err(self.error(offset, "commit's final flag disagrees with its frontier"));
                }
                let target = Target { seen, commit, frontier };
                match self.deliver_from.take() {
                    None => Ok(self.finish(target)),
                    Some(from) => {
                        reader.seek(from)?;
                        self.chunks.reset();
                        self.phase = Phase::Deliver { target, next_held: None, last_seq: 0, chunk_start: from };
                        Ok(Next::Busy)
                    }
                }
            }
        }
    }

    fn deliver<C, K: EventCodec<T, C>>(&mut self, reader: &mut dyn PartitionReader) -> Result<Next<T, C>> {
        let Phase::Deliver { target, next_held, last_seq, chunk_start } = &mut self.phase else {
            unreachable!("deliver is called in the deliver phase")
        };
        let Some(record) = reader.poll(REREAD_TIMEOUT)? else {
            return Ok(Next::Idle);
        };
        let offset = record.offset;
        if offset >= target.seen.offset {
            let held = next_held.take();
            let Phase::Deliver { target, .. } = std::mem::replace(&mut self.phase, Phase::Scan) else { unreachable!() };
            if offset > target.seen.offset {
                // The reader moved past the commit (it cannot: it is stored).
                return Err(self.error(offset, format!("re-read passed commit at offset {}", target.seen.offset)));
            }
            self.deliver_from = held;
            return Ok(self.finish(target));
        }
        let frame = frame::decode_frame(record.payload).map_err(|source| Error::Frame {
            at: self.id.clone(),
            offset,
            source,
        })?;
        let header = frame.header;
        if header.session != target.seen.session || header.seq <= *last_seq {
            return Ok(Next::Busy);
        }
        *last_seq = header.seq;
        let frame_error = |source| Error::Frame { at: self.id.clone(), offset, source };
        let event = match header.kind {
            FrameKind::Event => {
                *chunk_start = offset;
                K::decode(frame.payload).map_err(frame_error)?
            }
            FrameKind::EventChunk => {
                if frame.payload.get(..4) == Some(&[0, 0, 0, 0]) {
                    *chunk_start = offset;
                }
                match self.chunks.accept(frame.payload).map_err(frame_error)? {
                    Some(bytes) => K::decode(&bytes).map_err(frame_error)?,
                    None => return Ok(Next::Busy),
                }
            }
            _ => return Ok(Next::Busy),
        };
        let Event::Messages(stamp, container) = event else { return Ok(Next::Busy) };
        if !committed_at(stamp.elements(), &target.frontier) {
            next_held.get_or_insert(*chunk_start);
            return Ok(Next::Busy);
        }
        let delivered_before = self.delivered.offset.is_some_and(|delivered| *chunk_start < delivered)
            && committed_at(stamp.elements(), &self.delivered.frontier);
        if delivered_before {
            return Ok(Next::Busy);
        }
        Ok(Next::Event(Event::Messages(stamp, container)))
    }

    /// Delivers the target's progress: its state minus the delivered state.
    fn finish<C>(&mut self, target: Target<T>) -> Next<T, C> {
        let mut delta: ChangeBatch<T> = ChangeBatch::new();
        delta.extend(target.commit.state.iter().cloned());
        delta.extend(self.delivered.state.iter().map(|(t, d)| (t.clone(), -d)));
        self.delivered =
            Delivered { offset: Some(target.seen.offset), state: target.commit.state, frontier: target.frontier };
        self.phase = if target.seen.is_final { Phase::Done } else { Phase::Scan };
        let delta: Vec<(T, i64)> = delta.into_inner().into_vec();
        if delta.is_empty() {
            Next::Busy
        } else {
            Next::Event(Event::Progress(delta))
        }
    }
}
