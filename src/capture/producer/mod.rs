//! `EventProducer`: timely's `EventPusher` onto one log partition.
//!
//! `capture_into` hands the producer every event of a stream: data batches and
//! progress deltas. The producer frames each one (see [`crate::capture::wire::frame`]),
//! appends it to its partition, and follows the stream's frontier from the
//! progress deltas, so it knows when the stream is complete (the frontier is
//! empty) and flushes then, without anyone having to call it.
//!
//! With [`EventProducer::exactly_once`] (or a resume, see
//! [`crate::capture::worker::resume`]) the producer also writes commit records (see
//! [`crate::capture::wire::commit`]); replay then delivers only committed events.
//!
//! `EventPusher::push` cannot return an error, so a write failure is recorded
//! in the producer's [`Status`] with a message naming topic, partition
//! and cause, printed once, and returned by `execute`; the producer
//! stops writing (see [`crate::runtime::failure`]): a capture never loses
//! data silently.
//!
//! A frontier closed by a failure upstream (a replay that failed) looks like
//! the end of the stream. Under `execute` the producer checks
//! [`crate::runtime::failure::frontier_closed_by_failure`] before every
//! write, so such a stream stays without its final record (and its final
//! commit), as the incomplete stream it is.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;

use timely::container::Accountable;
use timely::dataflow::operators::capture::event::{Event, EventPusher};
use timely::order::TotalOrder;
use timely::progress::frontier::{Antichain, MutableAntichain};
use timely::progress::Timestamp;

use crate::capture::exactly_once::commit_state::CommitState;
use crate::capture::exactly_once::CommitOptions;
use crate::capture::wire::chunks::{put_chunk_header, CHUNK_HEADER_LEN};
use crate::capture::wire::codec::{Bincode, EventCodec};
use crate::capture::wire::commit::Commit;
use crate::capture::wire::frame::{self, FrameHeader, FrameKind, HEADER_LEN};
use crate::capture::wire::stream::StreamHeader;
use crate::error::{Error, Result, TopicPartition};
use crate::log::PartitionWriter;
use crate::runtime::failure;
use crate::runtime::status::Status;

mod stats;

use stats::CaptureMetrics;
pub use stats::CaptureStats;

/// Captures one timely stream into one log partition.
///
/// Build it with [`EventProducer::new`] (bincode) or
/// [`EventProducer::with_codec`], then pass it to `capture_into`.
pub struct EventProducer<T, C, W: PartitionWriter = Box<dyn PartitionWriter>, K = Bincode> {
    writer: W,
    id: TopicPartition,
    session: u64,
    next_seq: u64,
    buffer: Vec<u8>,
    max_record: usize,
    frontier: MutableAntichain<T>,
    status: Status<CaptureStats>,
    metrics: CaptureMetrics,
    failed: bool,
    finished: bool,
    final_written: bool,
    commits: Option<CommitState<T>>,
    token: Option<ResumeToken<T>>,
    final_check: Option<FinalCheck>,
    _types: PhantomData<(C, K)>,
}

impl<T, C, W: PartitionWriter, K> std::fmt::Debug for EventProducer<T, C, W, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer")
            .field("partition", &self.id)
            .field("session", &self.session)
            .field("next_seq", &self.next_seq)
            .field("exactly_once", &self.commits.is_some())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Reads the stream back after a failed final flush and says whether the
/// stream is complete with this producer's final commit (see
/// [`crate::capture::worker::resume`]): another writer's records among this
/// writer's own fail the flush, yet replay ignores them.
pub(crate) type FinalCheck = Box<dyn FnMut() -> Result<bool> + Send + Sync>;

/// Computes the opaque resume token stored with each commit from the
/// committed frontier (e.g. the source offsets that produce it).
pub(crate) type ResumeToken<T> = Box<dyn FnMut(&[T]) -> Vec<u8> + Send + Sync>;

impl<T, C, W> EventProducer<T, C, W, Bincode>
where
    T: Timestamp,
    C: Accountable + 'static,
    W: PartitionWriter,
    Bincode: EventCodec<T, C>,
{
    /// A bincode producer writing capture worker `worker` of `peers` to `writer`.
    ///
    /// Writes the stream header immediately, so a bad partition fails here.
    pub fn new(writer: W, worker: u32, peers: u32) -> Result<Self> {
        Self::with_codec(writer, worker, peers)
    }
}

impl<T, C, W, K> EventProducer<T, C, W, K>
where
    T: Timestamp,
    C: Accountable + 'static,
    W: PartitionWriter,
    K: EventCodec<T, C>,
{
    /// A producer using codec `K`.
    pub fn with_codec(writer: W, worker: u32, peers: u32) -> Result<Self> {
        let header = StreamHeader::new::<T, C>(K::ID, worker, peers);
        Self::start(writer, &header, None)
    }

    /// An exactly-once producer (codec `K`): it writes commit records, and
    /// replay delivers only what they cover. To continue such a stream after
    /// a crash, open it with [`crate::exactly_once::capture`] and
    /// [`crate::exactly_once::StreamStart::Resume`] instead.
    pub fn exactly_once(writer: W, worker: u32, peers: u32, options: CommitOptions) -> Result<Self> {
        let header = StreamHeader::new::<T, C>(K::ID, worker, peers);
        Self::start(writer, &header, Some(CommitState::new(options)))
    }

    /// Writes the first record (a stream header, or an epoch record already
    /// framed in `first`) and builds the producer.
    fn start(writer: W, header: &StreamHeader, commits: Option<CommitState<T>>) -> Result<Self> {
        let id = writer.partition().clone();
        let frame = header
            .to_frame_with(commits.is_some())
            .map_err(|e| Error::Write { at: id.clone(), reason: e.to_string() })?;
        Self::after_first_record(writer, header.session, frame, commits)
    }

    /// Appends `first` (sequence number 0 of `session`) and builds the producer.
    fn after_first_record(
        mut writer: W,
        session: u64,
        first: Vec<u8>,
        commits: Option<CommitState<T>>,
    ) -> Result<Self> {
        writer.append(&first)?;
        Ok(Self::from_parts(writer, session, first.len(), commits))
    }

    /// The producer of a stream whose first record (`first_len` bytes,
    /// sequence number 0 of `session`) `writer` has already written.
    pub(crate) fn from_parts(writer: W, session: u64, first_len: usize, commits: Option<CommitState<T>>) -> Self {
        let id = writer.partition().clone();
        let status = Status::<CaptureStats>::default();
        status.counters().frames.store(1, Ordering::Relaxed);
        status.counters().bytes.store(first_len as u64, Ordering::Relaxed);
        let max_record = writer.max_record_bytes().max(HEADER_LEN + 64);
        let metrics = CaptureMetrics::new(&id);
        metrics.frames.increment(1);
        metrics.bytes.increment(first_len as u64);
        EventProducer {
            writer,
            id,
            session,
            next_seq: 1,
            buffer: Vec::with_capacity(1 << 16),
            max_record,
            frontier: MutableAntichain::from_elem(T::minimum()),
            status,
            metrics,
            failed: false,
            finished: false,
            final_written: false,
            commits,
            token: None,
            final_check: None,
            _types: PhantomData,
        }
    }

    /// The producer of a worker whose exactly-once stream is already
    /// complete, in a resumed capture: every time is committed there, so it
    /// drops every message (counted in [`CaptureStats::dropped`]) and writes
    /// no progress, and it reports complete from the start. Peers' inputs
    /// may still route records to this worker; none reaches `writer`.
    pub(crate) fn already_complete(writer: W) -> Self
    where
        T: TotalOrder,
    {
        let commits = CommitState::resumed(CommitOptions::default(), Vec::new(), Antichain::new());
        let mut producer = Self::from_parts(writer, 0, 0, Some(commits));
        producer.continue_from(&[]);
        producer.final_written = true;
        producer.finished = true;
        producer.status.counters().frames.store(0, Ordering::Relaxed);
        producer.status.set_complete();
        producer
    }

    /// Asks `check` whether the stream is complete with this producer's
    /// final commit when the final flush fails.
    pub(crate) fn with_final_check(mut self, check: FinalCheck) -> Self {
        self.final_check = Some(check);
        self
    }

    /// Stores `token(committed frontier)` with every commit (exactly-once
    /// captures): a resume hands back the token of the commit it continues.
    pub fn with_resume_token(mut self, token: impl FnMut(&[T]) -> Vec<u8> + Send + Sync + 'static) -> Self {
        self.token = Some(Box::new(token));
        self
    }

    /// Sets the progress state the stream continues from (a resumed stream).
    pub(crate) fn continue_from(&mut self, state: &[(T, i64)]) {
        self.frontier = MutableAntichain::new();
        self.frontier.update_iter(state.iter().cloned());
    }

    /// The status to watch this capture by after the producer moved into
    /// a dataflow: its counters, completion and failure.
    pub fn status(&self) -> Status<CaptureStats> {
        self.status.clone()
    }

    /// The capture session id written in the stream header.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Flushes everything and returns the totals.
    pub fn finish(mut self) -> Result<CaptureStats> {
        self.finished = true;
        self.writer.flush()?;
        Ok(self.status.stats())
    }

    fn try_push(&mut self, event: &Event<T, C>) -> Result<()> {
        let translated;
        let event = match (&mut self.commits, event) {
            (Some(commits), Event::Progress(updates)) => match commits.progress(updates) {
                Some(written) => {
                    translated = Event::Progress(written);
                    &translated
                }
                None => return Ok(()),
            },
            (Some(commits), Event::Messages(stamp, _)) => {
                if commits.drops(stamp.elements()) {
                    self.status.counters().dropped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                event
            }
            (None, _) => event,
        };
        let mut frontier_changed = false;
        if let Event::Progress(updates) = event {
            frontier_changed = self.frontier.update_iter(updates.iter().cloned()).next().is_some();
            if frontier_changed {
                if let Some(least) = self.frontier.frontier().first().and_then(crate::runtime::metrics::as_number) {
                    self.metrics.frontier.set(least);
                }
            }
        }
        let became_empty = self.frontier.is_empty() && !self.final_written;
        // An exactly-once stream's final record is its final commit.
        let is_final = became_empty && self.commits.is_none();
        let bytes_before = self.status.counters().bytes.load(Ordering::Relaxed);
        frame::begin_frame(&mut self.buffer);
        K::encode(event, &mut self.buffer).map_err(|e| self.write_error(e.to_string()))?;
        if self.buffer.len() <= self.max_record {
            self.append_frame(FrameKind::Event, is_final)?;
        } else {
            self.append_chunks(is_final)?;
        }
        if let Event::Messages(_, container) = event {
            let records = container.record_count().max(0) as u64;
            self.status.counters().records.fetch_add(records, Ordering::Relaxed);
            self.metrics.records.increment(records);
        }
        if let Some(commits) = &mut self.commits {
            let wrote = self.status.counters().bytes.load(Ordering::Relaxed) - bytes_before;
            commits.wrote(wrote as usize);
            self.metrics.uncommitted_bytes.increment(wrote as f64);
            if commits.due(became_empty) {
                // A commit vouches for every earlier record of this writer:
                // a lost or foreign-interleaved one fails the capture here,
                // before the commit, not at the final flush.
                self.writer.check_stored()?;
                self.commit(became_empty)?;
            }
        }
        if became_empty {
            self.final_written = true;
            self.flush_final()?;
            self.status.set_complete();
        } else if frontier_changed {
            self.writer.publish()?;
        }
        Ok(())
    }

    /// Writes a commit record of the stream's current state.
    fn commit(&mut self, is_final: bool) -> Result<()> {
        let Some(commits) = &mut self.commits else { return Ok(()) };
        let started = std::time::Instant::now();
        let state = commits.take_commit();
        let token = match &mut self.token {
            Some(token) => token(self.frontier.frontier().as_ref()),
            None => Vec::new(),
        };
        frame::begin_frame(&mut self.buffer);
        Commit { state, token }.encode::<C, K>(&mut self.buffer).map_err(|e| self.write_error(e.to_string()))?;
        if self.buffer.len() > self.max_record {
            return Err(
                self.write_error(format!("commit record of {} bytes exceeds the record limit", self.buffer.len()))
            );
        }
        // A log that makes commits durable (the file log with `sync`) has
        // them on disk, after what they cover, before they are counted.
        self.writer.before_commit()?;
        self.append_frame(FrameKind::Commit, is_final)?;
        self.writer.publish()?;
        self.writer.commit_point()?;
        self.status.counters().commits.fetch_add(1, Ordering::Relaxed);
        self.metrics.commits.increment(1);
        self.metrics.commit_seconds.record(started.elapsed().as_secs_f64());
        self.metrics.uncommitted_bytes.set(0.0);
        Ok(())
    }

    /// Frames `self.buffer` (header space + payload) and appends it.
    fn append_frame(&mut self, kind: FrameKind, is_final: bool) -> Result<()> {
        let header = FrameHeader {
            codec: K::ID,
            kind,
            session: self.session,
            seq: self.next_seq,
            is_final,
            exactly_once: false,
        };
        frame::finish_frame(&mut self.buffer, header).map_err(|e| self.write_error(e.to_string()))?;
        self.writer.append(&self.buffer)?;
        self.next_seq += 1;
        self.status.counters().frames.fetch_add(1, Ordering::Relaxed);
        self.status.counters().bytes.fetch_add(self.buffer.len() as u64, Ordering::Relaxed);
        self.metrics.frames.increment(1);
        self.metrics.bytes.increment(self.buffer.len() as u64);
        Ok(())
    }

    /// Splits an encoded event too large for one record into chunk frames.
    /// The chunks of one event take consecutive sequence numbers.
    fn append_chunks(&mut self, is_final: bool) -> Result<()> {
        let encoded = std::mem::take(&mut self.buffer);
        let body = &encoded[HEADER_LEN..];
        let per_chunk = self.max_record - HEADER_LEN - CHUNK_HEADER_LEN;
        let count = body.len().div_ceil(per_chunk);
        let count32 = u32::try_from(count).map_err(|_| self.write_error("event too large to chunk".into()))?;
        for (index, piece) in body.chunks(per_chunk).enumerate() {
            let mut buffer = Vec::with_capacity(HEADER_LEN + CHUNK_HEADER_LEN + piece.len());
            frame::begin_frame(&mut buffer);
            put_chunk_header(&mut buffer, index as u32, count32);
            buffer.extend_from_slice(piece);
            self.buffer = buffer;
            self.append_frame(FrameKind::EventChunk, is_final && index + 1 == count)?;
        }
        self.buffer = encoded;
        Ok(())
    }

    /// The flush after the final record. If it fails and the stream reads
    /// back complete with this producer's final commit (the failure was
    /// another writer's records among this writer's own, which replay
    /// ignores), the capture has done its job.
    fn flush_final(&mut self) -> Result<()> {
        let Err(error) = self.writer.flush() else { return Ok(()) };
        let complete = self.final_check.as_mut().is_some_and(|check| check().unwrap_or(false));
        if !complete {
            return Err(error);
        }
        // Nothing follows the final commit: no flush at drop either.
        self.finished = true;
        Ok(())
    }

    fn write_error(&self, reason: String) -> Error {
        Error::Write { at: self.id.clone(), reason }
    }
}

impl<T, C, W, K> EventPusher<T, C> for EventProducer<T, C, W, K>
where
    T: Timestamp,
    C: Accountable + 'static,
    W: PartitionWriter,
    K: EventCodec<T, C>,
{
    fn push(&mut self, event: Event<T, C>) {
        if self.failed {
            return;
        }
        if failure::frontier_closed_by_failure() {
            // This stream's frontier may be closing because of that failure:
            // writing on could store a final record for an incomplete stream.
            self.failed = true;
            // What was written is a valid prefix: durable as far as it goes.
            if let Err(error) = self.writer.flush() {
                self.status.failure().record("capture failed on flush", error);
                return;
            }
            let reason = "stopped before the stream's end: a failure closed a frontier of this computation".into();
            let error = Error::Write { at: self.id.clone(), reason };
            self.status.failure().record_consequence("capture failed", error);
            return;
        }
        if let Err(error) = self.try_push(&event) {
            self.failed = true;
            self.status.failure().record("capture failed", error);
        }
    }
}

impl<T, C, W: PartitionWriter, K> Drop for EventProducer<T, C, W, K> {
    fn drop(&mut self) {
        if self.finished || self.failed {
            return;
        }
        if let Err(error) = self.writer.flush() {
            self.status.failure().record("capture failed on final flush", error);
        }
    }
}
