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
//! The records a delivery pass needs are usually still in memory: the scan
//! keeps the epoch's records since the first undelivered one while they fit
//! in a bounded window (64 MiB per partition), and the pass reads them from
//! there; only a longer uncommitted stretch is re-read from the log.
//!
//! Messages go out before the progress that passes their times, and never
//! behind the delivered frontier (they are at times beyond the previous
//! commit), so timely sees a valid event sequence at every moment. After a
//! valid epoch record the old epoch's held records are forgotten: the
//! resumed capture regenerates the times they were at.

use std::collections::VecDeque;
use std::time::Duration;

use timely::dataflow::operators::capture::Event;
use timely::progress::frontier::Antichain;
use timely::progress::{ChangeBatch, Timestamp};

use crate::capture::exactly_once::chain::{Chain, ChainStep, CommitSeen};
use crate::capture::exactly_once::rules::committed_at;
use crate::capture::wire::chunks::{split_chunk, ChunkAssembler};
use crate::capture::wire::codec::EventCodec;
use crate::capture::wire::commit::Commit;
use crate::capture::wire::frame::{self, FrameKind};
use crate::error::{Error, Result, TopicPartition};
use crate::log::PartitionReader;

/// Reads never wait: a record not yet here (a re-read after a seek on
/// Kafka needs a fetch) is `Next::Idle`, and the replay looks again on its
/// next activation, so no other operator of the worker waits for it.
const NO_WAIT: Duration = Duration::ZERO;

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
    /// `chunk_start` the offset of the event being reassembled;
    /// `from_window`: the records are in memory, no re-read needed.
    Deliver {
        target: Target<T>,
        next_held: Option<u64>,
        last_seq: u64,
        chunk_start: u64,
        from_window: bool,
    },
    Done,
}

/// What one call produced.
pub(crate) enum Next<T, C> {
    /// An event for timely.
    Event(Event<T, C>),
    /// No record available now.
    Idle,
    /// A record was read but produced nothing for timely (call again).
    Busy,
}

/// The exactly-once replay of one partition.
pub(crate) struct CommittedReplay<T> {
    id: TopicPartition,
    chain: Chain,
    phase: Phase<T>,
    delivered: Delivered<T>,
    deliver_from: Option<u64>,
    chunks: ChunkAssembler,
    window: Window,
}

/// What one re-read record amounts to.
enum Delivery<T, C> {
    /// An event for timely.
    Event(Event<T, C>),
    /// A message the target commit does not cover (it stays for later).
    Held,
    /// A chunk of an event not yet whole.
    Partial,
    /// Nothing to deliver (progress, a duplicate, delivered before).
    Skip,
}

/// Bytes of uncommitted records a replay keeps in memory per partition, so
/// the common case delivers without re-reading; beyond it, it re-reads.
pub(crate) const WINDOW_BYTES: usize = 64 << 20;

/// The records since `deliver_from`, while they fit in `limit` bytes.
#[derive(Default)]
struct Window {
    limit: usize,
    records: VecDeque<(u64, Vec<u8>)>,
    bytes: usize,
    /// Whether `records` holds every record of the epoch since `deliver_from`.
    complete: bool,
    /// Records of the event being reassembled in this pass.
    event: Vec<(u64, Vec<u8>)>,
    /// Records holding held messages, for the next pass.
    kept: VecDeque<(u64, Vec<u8>)>,
}

impl Window {
    fn push(&mut self, offset: u64, payload: &[u8]) {
        if self.complete && self.bytes + payload.len() <= self.limit {
            self.bytes += payload.len();
            self.records.push_back((offset, payload.to_vec()));
        } else {
            self.reset(false);
        }
    }

    /// Forgets every record; `complete`: nothing is pending, so the window
    /// holds everything from here on.
    fn reset(&mut self, complete: bool) {
        *self = Window { complete, limit: self.limit, ..Window::default() };
    }

    /// Files a record consumed by a pass: kept if its event is held.
    fn after<T, C>(&mut self, outcome: Delivery<T, C>, offset: u64, bytes: Vec<u8>) -> Next<T, C> {
        self.event.push((offset, bytes));
        match outcome {
            Delivery::Partial => return Next::Busy,
            Delivery::Held => {
                for (offset, bytes) in self.event.drain(..) {
                    self.bytes += bytes.len();
                    self.kept.push_back((offset, bytes));
                }
                return Next::Busy;
            }
            Delivery::Skip | Delivery::Event(_) => self.event.clear(),
        }
        match outcome {
            Delivery::Event(event) => Next::Event(event),
            _ => Next::Busy,
        }
    }

    /// After a pass from the window: what is held is what remains.
    fn keep_held(&mut self) {
        self.event.clear();
        self.records = std::mem::take(&mut self.kept);
    }
}

impl<T: Timestamp> CommittedReplay<T> {
    /// Replay of the exactly-once stream whose root header (session
    /// `session`) was read at `offset`; the reader is positioned after it.
    /// Up to `window_bytes` of uncommitted records are kept in memory.
    pub(crate) fn new(id: TopicPartition, session: u64, offset: u64, window_bytes: usize) -> Self {
        let initial = Commit::<T>::initial();
        CommittedReplay {
            id,
            chain: Chain::new(session, offset),
            phase: Phase::Scan,
            delivered: Delivered { offset: None, frontier: initial.frontier(), state: initial.state },
            deliver_from: None,
            chunks: ChunkAssembler::default(),
            window: Window { complete: true, limit: window_bytes, ..Window::default() },
        }
    }

    /// Whether the final commit has been delivered.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// The frontier of the commits delivered so far.
    pub(crate) fn frontier(&self) -> &Antichain<T> {
        &self.delivered.frontier
    }

    /// Ends the replay early (a failure): the progress retracting every
    /// count delivered so far, so no worker waits for this stream.
    pub(crate) fn retract_all(&mut self) -> Vec<(T, i64)> {
        self.phase = Phase::Done;
        self.delivered.frontier = Antichain::new();
        std::mem::take(&mut self.delivered.state).into_iter().map(|(t, d)| (t, -d)).collect()
    }

    /// Why the current epoch stopped counting (records lost after its last
    /// commit), if it did.
    pub(crate) fn broken(&self) -> Option<&str> {
        self.chain.broken()
    }

    fn error(&self, offset: u64, reason: impl Into<String>) -> Error {
        Error::Protocol { at: self.id.clone(), offset, reason: reason.into() }
    }

    /// Reads at most one record, without waiting, and says what came of it.
    pub(crate) fn step<C, K: EventCodec<T, C>>(
        &mut self,
        reader: &mut dyn PartitionReader,
        read: &mut dyn FnMut(u64, usize),
    ) -> Result<Next<T, C>> {
        match self.phase {
            Phase::Done => Ok(Next::Idle),
            Phase::Scan => self.scan::<C, K>(reader, read),
            Phase::Deliver { .. } => self.deliver::<C, K>(reader),
        }
    }

    fn scan<C, K: EventCodec<T, C>>(
        &mut self,
        reader: &mut dyn PartitionReader,
        read: &mut dyn FnMut(u64, usize),
    ) -> Result<Next<T, C>> {
        let Some(record) = reader.poll(NO_WAIT)? else { return Ok(Next::Idle) };
        read(record.offset, record.payload.len());
        let offset = record.offset;
        let frame = frame::decode_frame(record.payload).map_err(Error::frame_at(&self.id, offset))?;
        let step = self.chain.accept(offset, &frame).map_err(|reason| self.error(offset, reason))?;
        match step {
            ChainStep::Ignored => Ok(Next::Busy),
            ChainStep::Data => {
                self.deliver_from.get_or_insert(offset);
                self.window.push(offset, record.payload);
                Ok(Next::Busy)
            }
            ChainStep::Broken(_) => {
                // Nothing more of this epoch will be delivered; a resume
                // continues its last commit (or the idle timeout reports it).
                self.deliver_from = None;
                self.window.reset(true);
                Ok(Next::Busy)
            }
            ChainStep::NewEpoch(_) => {
                // The old epoch's uncommitted records are dropped: the new
                // epoch regenerates everything beyond the commit it continues.
                self.deliver_from = None;
                self.window.reset(true);
                Ok(Next::Busy)
            }
            ChainStep::Commit(seen) => {
                let commit = Commit::decode::<C, K>(frame.payload).map_err(Error::frame_at(&self.id, offset))?;
                let frontier = commit.frontier();
                if seen.is_final != frontier.is_empty() {
                    return Err(self.error(offset, "commit's final flag disagrees with its frontier"));
                }
                let target = Target { seen, commit, frontier };
                match self.deliver_from.take() {
                    None => Ok(self.finish(target)),
                    Some(from) => {
                        let from_window = self.window.complete;
                        if !from_window {
                            reader.seek(from)?;
                        }
                        self.chunks.reset();
                        self.phase =
                            Phase::Deliver { target, next_held: None, last_seq: 0, chunk_start: from, from_window };
                        Ok(Next::Busy)
                    }
                }
            }
        }
    }

    fn deliver<C, K: EventCodec<T, C>>(&mut self, reader: &mut dyn PartitionReader) -> Result<Next<T, C>> {
        let Phase::Deliver { target, next_held, from_window, .. } = &mut self.phase else {
            unreachable!("deliver is called in the deliver phase")
        };
        if *from_window {
            let Some((offset, bytes)) = self.window.records.pop_front() else {
                // The window ends just before the commit: the pass is done.
                let held = next_held.take();
                self.window.keep_held();
                return Ok(self.end_pass(held));
            };
            self.window.bytes -= bytes.len();
            let outcome = self.deliver_record::<C, K>(offset, &bytes)?;
            return Ok(self.window.after(outcome, offset, bytes));
        }
        let commit_offset = target.seen.offset;
        let Some(record) = reader.poll(NO_WAIT)? else {
            return Ok(Next::Idle);
        };
        let offset = record.offset;
        if offset > commit_offset {
            // The reader moved past the commit (it cannot: it is stored).
            return Err(self.error(offset, format!("re-read passed commit at offset {commit_offset}")));
        }
        if offset == commit_offset {
            let Phase::Deliver { next_held, .. } = &mut self.phase else { unreachable!("in the deliver phase") };
            let held = next_held.take();
            return Ok(self.end_pass(held));
        }
        Ok(match self.deliver_record::<C, K>(offset, record.payload)? {
            Delivery::Event(event) => Next::Event(event),
            _ => Next::Busy,
        })
    }

    /// Ends a delivery pass at the target commit; `held` is the first record
    /// holding a message the commit did not cover.
    fn end_pass<C>(&mut self, held: Option<u64>) -> Next<T, C> {
        let Phase::Deliver { target, from_window, .. } = std::mem::replace(&mut self.phase, Phase::Scan) else {
            unreachable!("end_pass is called in the deliver phase")
        };
        if !from_window {
            // Held records are not in the window: until nothing is held, the
            // next passes re-read too.
            self.window.reset(held.is_none());
        }
        self.deliver_from = held;
        self.finish(target)
    }

    /// What one re-read record of the target's epoch amounts to.
    fn deliver_record<C, K: EventCodec<T, C>>(&mut self, offset: u64, payload: &[u8]) -> Result<Delivery<T, C>> {
        let Phase::Deliver { target, next_held, last_seq, chunk_start, .. } = &mut self.phase else {
            unreachable!("deliver_record is called in the deliver phase")
        };
        let frame = frame::decode_frame(payload).map_err(Error::frame_at(&self.id, offset))?;
        let header = frame.header;
        if header.session != target.seen.session || header.seq <= *last_seq {
            return Ok(Delivery::Skip);
        }
        *last_seq = header.seq;
        let frame_error = Error::frame_at(&self.id, offset);
        let event = match header.kind {
            FrameKind::Event => {
                *chunk_start = offset;
                K::decode(frame.payload).map_err(&frame_error)?
            }
            FrameKind::EventChunk => {
                if split_chunk(frame.payload).is_some_and(|(index, _, _)| index == 0) {
                    *chunk_start = offset;
                }
                match self.chunks.accept(frame.payload).map_err(&frame_error)? {
                    Some(bytes) => K::decode(&bytes).map_err(&frame_error)?,
                    None => return Ok(Delivery::Partial),
                }
            }
            _ => return Ok(Delivery::Skip),
        };
        let Event::Messages(stamp, container) = event else { return Ok(Delivery::Skip) };
        if !committed_at(stamp.elements(), &target.frontier) {
            next_held.get_or_insert(*chunk_start);
            return Ok(Delivery::Held);
        }
        let delivered_before = self.delivered.offset.is_some_and(|delivered| *chunk_start < delivered)
            && committed_at(stamp.elements(), &self.delivered.frontier);
        if delivered_before {
            return Ok(Delivery::Skip);
        }
        Ok(Delivery::Event(Event::Messages(stamp, container)))
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
