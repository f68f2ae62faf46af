//! `EventConsumer`: timely's `EventIterator` over one log partition.
//!
//! Replay is only correct if timely sees exactly the captured sequence of
//! events: progress records are deltas, so a skipped, repeated or foreign
//! record silently computes a wrong frontier. The consumer therefore checks
//! every record before timely sees it: the stream header (codec and types),
//! the session, and the sequence number. Exact duplicates (a retried write)
//! are dropped; anything else that breaks the sequence stops the replay with
//! an error naming topic, partition, offset and reason.
//!
//! `EventIterator::next` cannot return an error, so an error is recorded in
//! the consumer's [`Status`] and the consumer closes its frontier, letting the
//! computation end (see [`crate::runtime::failure`]). The consumer also follows the stream's frontier: once it is
//! empty the stream is complete and the consumer stops polling; if it
//! delivers nothing for the idle timeout before that, the stream is reported
//! incomplete instead of waiting forever. Idle means "no event delivered",
//! not "no bytes read": records the replay skips (an old writer's, an epoch
//! broken by a gap, another session's) keep arriving from a writer that can
//! never complete the stream, and must not keep the replay waiting.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use timely::container::Accountable;
use timely::dataflow::operators::capture::event::{Event, EventIterator};
use timely::progress::frontier::MutableAntichain;
use timely::progress::Timestamp;

use crate::capture::exactly_once::committed::{CommittedReplay, Next, WINDOW_BYTES};
use crate::capture::replay::protocol::{Protocol, Step};
use crate::capture::replay::session::choose_session;
use crate::capture::replay::stats::{ReplayMetrics, ReplayStats};
use crate::capture::wire::chunks::ChunkAssembler;
use crate::capture::wire::codec::{Bincode, EventCodec};
use crate::capture::wire::frame::{self, FrameKind};
use crate::capture::wire::stream::StreamHeader;
use crate::error::{Error, Result, TopicPartition};
use crate::log::{LogBackend, PartitionReader};
use crate::runtime::failure;
use crate::runtime::status::Status;

/// Events handed to timely per activation before yielding, so a long
/// backlog is not buffered whole inside the dataflow.
const EVENTS_PER_ACTIVATION: usize = 256;

/// Replays one log partition as a timely event stream.
///
/// `next` never waits for a record, so a quiet partition holds up no other
/// operator of its worker: replay it with [`crate::ReplayLog::replay_log`]
/// and step with [`crate::step_until_done`], which park the worker between
/// looks (timely's `replay_into` would look again at once, forever).
pub struct EventConsumer<T, C, R: PartitionReader = Box<dyn PartitionReader>, K = Bincode> {
    reader: R,
    protocol: Protocol<T>,
    status: Status<ReplayStats>,
    metrics: ReplayMetrics,
    idle_timeout: Option<Duration>,
    last_activity: Instant,
    /// An event was delivered since `last_activity` was last set.
    delivered_since: bool,
    served: usize,
    done: bool,
    note: Option<String>,
    committed: Option<CommittedReplay<T>>,
    /// The stream header of an exactly-once stream was read at open
    /// (session, offset): committed replay starts at the first `next`.
    committed_start: Option<(u64, u64)>,
    window_bytes: Option<usize>,
    _types: PhantomData<(C, K)>,
}

impl<T, C, R: PartitionReader, K> std::fmt::Debug for EventConsumer<T, C, R, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventConsumer")
            .field("partition", &self.protocol.id)
            .field("exactly_once", &self.committed.is_some())
            .field("done", &self.done)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl<T: Timestamp, C, R: PartitionReader> EventConsumer<T, C, R, Bincode>
where
    Bincode: EventCodec<T, C>,
{
    /// A bincode consumer of the stream `reader` is positioned at.
    pub fn new(reader: R) -> Self {
        Self::with_codec(reader)
    }
}

impl<T: Timestamp, C, K: EventCodec<T, C>> EventConsumer<T, C, Box<dyn PartitionReader>, K> {
    /// Opens a consumer of `topic`/`partition` positioned at the session it
    /// should replay: the newest complete one (a restarted capture appends a new session
    /// after the torn remains of the old).
    /// Records of other sessions are skipped. `timeout` bounds each read
    /// made while choosing.
    pub fn open(log: &dyn LogBackend, topic: &str, partition: u32, timeout: Duration) -> Result<Self> {
        Self::open_at_session(log, topic, partition, timeout, true)
    }

    /// [`EventConsumer::open`], reading the stream header before returning
    /// only if `read_header`; otherwise the first `next` reads it. A replay
    /// needs one stream's header up front (the stream count); the others'
    /// first fetches are large and, on a busy broker, the last of them
    /// arrives well into the replay: no worker should wait for all of them
    /// to start.
    pub(crate) fn open_at_session(
        log: &dyn LogBackend,
        topic: &str,
        partition: u32,
        timeout: Duration,
        read_header: bool,
    ) -> Result<Self> {
        let (choice, reader) = choose_session(log, topic, partition, timeout)?;
        let mut consumer = Self::with_codec(reader);
        consumer.protocol.only_session = choice.as_ref().map(|c| c.session);
        if let Some(choice) = choice.as_ref().filter(|_| read_header) {
            consumer.read_stream_header(choice.start_offset, timeout);
        }
        consumer.note = choice.and_then(|c| c.note);
        Ok(consumer)
    }
}

impl<T: Timestamp, C, R: PartitionReader, K: EventCodec<T, C>> EventConsumer<T, C, R, K> {
    /// A consumer using codec `K`.
    pub fn with_codec(reader: R) -> Self {
        let id = reader.partition().clone();
        let metrics = ReplayMetrics::new(&id);
        EventConsumer {
            reader,
            metrics,
            protocol: Protocol {
                id,
                header: None,
                next_seq: 0,
                frontier: MutableAntichain::from_elem(T::minimum()),
                chunks: ChunkAssembler::default(),
                last_offset: None,
                only_session: None,
                check_types: true,
                skipped: 0,
            },
            status: Status::default(),
            idle_timeout: None,
            last_activity: Instant::now(),
            delivered_since: true,
            served: 0,
            done: false,
            note: None,
            committed: None,
            committed_start: None,
            window_bytes: None,
            _types: PhantomData,
        }
    }

    /// Fails the replay if it delivers no event for `timeout` before the
    /// stream completes (records it skips do not count). Without it, the
    /// consumer waits for a live stream forever.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Accepts a stream whose header names other Rust types for time and
    /// container (the same data defined in two crates, or renamed); the codec
    /// must still match, and decoding still checks every event.
    pub fn skip_type_check(mut self) -> Self {
        self.protocol.check_types = false;
        self
    }

    /// Exactly-once streams: how many bytes of uncommitted records to keep
    /// in memory per partition; a longer uncommitted stretch is re-read from
    /// the log when its commit arrives. Default: 64 MiB where re-reading
    /// costs a refetch (Kafka), none where it is cheap (the file log).
    pub fn replay_window(mut self, bytes: usize) -> Self {
        self.window_bytes = Some(bytes);
        self
    }

    /// The status to watch this replay by after the consumer moved into a
    /// dataflow: its counters, completion and failure.
    pub fn status(&self) -> Status<ReplayStats> {
        self.status.clone()
    }

    /// What the session choice of [`EventConsumer::open`] wants a user to
    /// know (older sessions skipped, newest session incomplete), if anything.
    pub fn session_note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The partition this consumer replays.
    pub fn partition(&self) -> &TopicPartition {
        &self.protocol.id
    }

    /// The stream header, once read.
    pub fn stream_header(&self) -> Option<&StreamHeader> {
        self.protocol.header.as_ref()
    }

    /// From the stream header of an exactly-once stream (`session`, at
    /// `offset`) on, only committed events come out ([`CommittedReplay`]).
    fn start_committed(&mut self, session: u64, offset: u64) {
        let id = self.protocol.id.clone();
        // Default: keep uncommitted records in memory only where re-reading
        // them would cost a refetch.
        let cheap = self.reader.rereads_are_cheap();
        let window = self.window_bytes.unwrap_or(if cheap { 0 } else { WINDOW_BYTES });
        self.committed = Some(CommittedReplay::new(id, session, offset, window));
    }

    /// Reads the stream header the reader is positioned at (`start`), waiting at most
    /// `timeout`, so [`EventConsumer::stream_header`] knows the stream's shape
    /// before replay starts (how many streams the capture wrote) and the
    /// replay's first fetch is already under way. Anything else (no record,
    /// an error such as a start deleted by retention, a record that is not a
    /// header of the chosen session) is read again from `start` by `next`,
    /// which reports it; a failed seek fails its first poll the same way.
    fn read_stream_header(&mut self, start: u64, timeout: Duration) {
        if !self.accept_stream_header(timeout) {
            self.protocol.header = None;
            self.protocol.last_offset = None;
            let _ = self.reader.seek(start);
        }
    }

    /// Polls one record and accepts it if it is a stream header of the
    /// chosen session; `false` if it is anything else.
    fn accept_stream_header(&mut self, timeout: Duration) -> bool {
        let Ok(Some(record)) = self.reader.poll_stored(timeout) else { return false };
        let protocol = &mut self.protocol;
        let is_header = frame::decode_frame(record.payload).is_ok_and(|frame| {
            frame.header.kind == FrameKind::StreamHeader
                && protocol.only_session.is_none_or(|session| session == frame.header.session)
        });
        if !is_header {
            return false;
        }
        let shared = self.status.counters();
        match protocol.accept::<C, K>(record.offset, record.payload, &shared.duplicates) {
            Ok(Step::Skip) => {}
            Ok(Step::Committed(session, offset)) => self.committed_start = Some((session, offset)),
            _ => return false,
        }
        shared.frames.fetch_add(1, Ordering::Relaxed);
        shared.bytes.fetch_add(record.payload.len() as u64, Ordering::Relaxed);
        self.metrics.read(record.offset, record.payload.len());
        true
    }

    /// Records `error` and closes the frontier (see [`crate::runtime::failure`]).
    fn fail(&mut self, error: Error) -> Option<Event<T, C>> {
        self.status.failure().record("replay failed", error);
        self.close()
    }

    /// Ends the stream: the progress event retracting every count this
    /// stream still holds in the replay operator, so no worker waits for it.
    fn close(&mut self) -> Option<Event<T, C>> {
        failure::closing_frontier_after_failure();
        self.done = true;
        let retract: Vec<(T, i64)> = match &mut self.committed {
            Some(committed) => committed.retract_all(),
            None => {
                let retract: Vec<(T, i64)> = self.protocol.frontier.updates().map(|(t, n)| (t.clone(), -n)).collect();
                self.protocol.frontier.update_iter(retract.iter().cloned());
                retract
            }
        };
        Some(Event::Progress(retract))
    }

    fn check_idle(&mut self) -> Option<Event<T, C>> {
        if let Some(timeout) = self.idle_timeout {
            let idle = self.last_activity.elapsed();
            if idle >= timeout {
                let frontier = match &self.committed {
                    Some(committed) => match committed.broken() {
                        None => format!("{:?} (committed)", committed.frontier().elements()),
                        Some(reason) => format!(
                            "{:?} (committed; {reason}: resume the capture to continue)",
                            committed.frontier().elements()
                        ),
                    },
                    None => format!("{:?}", self.protocol.frontier.frontier().to_vec()),
                };
                let last_offset = self.protocol.last_offset;
                let at = self.protocol.id.clone();
                return self.fail(Error::Incomplete { at, last_offset, frontier, idle_secs: idle.as_secs() });
            }
        }
        None
    }
}

impl<T, C, R, K> EventIterator<T, C> for EventConsumer<T, C, R, K>
where
    T: Timestamp,
    C: Accountable + Clone,
    R: PartitionReader,
    K: EventCodec<T, C>,
{
    fn next(&mut self) -> Option<Cow<'_, Event<T, C>>> {
        if self.done {
            return None;
        }
        if failure::peer_failed() {
            return self.close().map(Cow::Owned);
        }
        if self.served >= EVENTS_PER_ACTIVATION {
            self.served = 0;
            let end = self.reader.cached_end_offset();
            self.metrics.update_lag(end, false);
            return None;
        }
        if let Some((session, offset)) = self.committed_start.take() {
            self.start_committed(session, offset);
        }
        loop {
            if self.committed.is_some() {
                return self.next_committed();
            }
            // Never wait: the replay operator is activated again after its
            // period, and the worker parks in between (`step_until_done`).
            let step = match self.reader.poll(Duration::ZERO) {
                Err(error) => return self.fail(error).map(Cow::Owned),
                Ok(None) => return self.went_quiet().map(Cow::Owned),
                Ok(Some(record)) => {
                    let shared = self.status.counters();
                    shared.frames.fetch_add(1, Ordering::Relaxed);
                    shared.bytes.fetch_add(record.payload.len() as u64, Ordering::Relaxed);
                    self.metrics.read(record.offset, record.payload.len());
                    self.protocol.accept::<C, K>(record.offset, record.payload, &shared.duplicates)
                }
            };
            match step {
                Err(error) => return self.fail(error).map(Cow::Owned),
                Ok(Step::Skip) => {
                    // Not every skip: a stream header or a chunk is read.
                    let skipped = std::mem::take(&mut self.protocol.skipped);
                    if skipped > 0 {
                        self.metrics.skipped.increment(skipped);
                    }
                    continue;
                }
                Ok(Step::StartMissing) => {
                    // Asked only now: a broker round trip every replay would pay.
                    let first_available = self.reader.first_available_offset().ok().flatten();
                    let offset = self.protocol.last_offset.unwrap_or(0);
                    let error = self.protocol.start_missing(offset, first_available);
                    return self.fail(error).map(Cow::Owned);
                }
                Ok(Step::Committed(session, offset)) => {
                    self.start_committed(session, offset);
                    continue;
                }
                Ok(Step::Deliver(event)) => {
                    let complete = self.protocol.frontier.is_empty();
                    return Some(Cow::Owned(self.hand_out(event, complete)));
                }
            }
        }
    }
}

/// Records an exactly-once replay may read per call before it yields to
/// timely, so a long uncommitted tail does not hold the worker.
const RECORDS_PER_CALL: usize = 4096;

impl<T, C, R, K> EventConsumer<T, C, R, K>
where
    T: Timestamp,
    C: Accountable + Clone,
    R: PartitionReader,
    K: EventCodec<T, C>,
{
    /// Counts an event handed to timely; `complete`: it was the stream's last.
    fn hand_out(&mut self, event: Event<T, C>, complete: bool) -> Event<T, C> {
        if let Event::Messages(_, container) = &event {
            let records = container.record_count().max(0) as u64;
            self.status.counters().records.fetch_add(records, Ordering::Relaxed);
            self.metrics.records.increment(records);
        }
        if complete {
            self.metrics.update_lag(None, true);
            self.done = true;
            self.status.set_complete();
        }
        self.served += 1;
        self.delivered_since = true;
        event
    }

    /// Nothing to read now: notes when the stream went quiet and fails it
    /// once it has been quiet for the idle timeout.
    fn went_quiet(&mut self) -> Option<Event<T, C>> {
        if self.served > 0 || self.delivered_since {
            // Once per activation that delivered: the end as librdkafka's
            // last fetch reported it (no round trip).
            let end = self.reader.cached_end_offset();
            self.metrics.update_lag(end, true);
        }
        self.metrics.idle_seconds.set(self.last_activity.elapsed().as_secs_f64());
        self.served = 0;
        self.idle_since_delivery()
    }

    /// Idle is measured from the last delivery: the first look after one
    /// starts the clock (no clock read per event), records read since
    /// without delivering anything do not restart it.
    fn idle_since_delivery(&mut self) -> Option<Event<T, C>> {
        if std::mem::take(&mut self.delivered_since) {
            self.last_activity = Instant::now();
        }
        self.check_idle()
    }

    /// `next` for an exactly-once stream: only committed events come out.
    fn next_committed(&mut self) -> Option<Cow<'_, Event<T, C>>> {
        let status = self.status.clone();
        // (one past the largest offset read, bytes read) for the metrics.
        let seen = std::cell::Cell::new((0u64, 0u64));
        let mut read = |offset: u64, bytes: usize| {
            let shared = status.counters();
            shared.frames.fetch_add(1, Ordering::Relaxed);
            shared.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            let (end, total) = seen.get();
            seen.set((end.max(offset + 1), total + bytes as u64));
        };
        for _ in 0..RECORDS_PER_CALL {
            let committed = self.committed.as_mut().expect("exactly-once replay");
            let step = committed.step::<C, K>(&mut self.reader, &mut read);
            let (end, bytes) = seen.take();
            if bytes > 0 {
                self.metrics.read(end - 1, 0);
                self.metrics.bytes.increment(bytes);
            }
            let committed = self.committed.as_mut().expect("exactly-once replay");
            match step {
                Err(error) => return self.fail(error).map(Cow::Owned),
                Ok(Next::Idle) => return self.went_quiet().map(Cow::Owned),
                Ok(Next::Busy) => {}
                Ok(Next::Event(event)) => {
                    let complete = committed.is_done();
                    return Some(Cow::Owned(self.hand_out(event, complete)));
                }
            }
        }
        // A long run of records that delivered nothing (a writer whose
        // records are all ignored): still idle.
        self.idle_since_delivery().map(Cow::Owned)
    }
}
