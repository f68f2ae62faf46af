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
//! This file holds the consumer and its settings; `open` chooses the
//! session and reads its header, `next` is the `EventIterator` and how a
//! replay fails or ends, `idle` the idle timeout, and `committed` the path
//! of exactly-once streams.

mod committed;
mod idle;
mod next;
mod open;

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use timely::progress::frontier::MutableAntichain;
use timely::progress::Timestamp;

use crate::capture::exactly_once::committed::CommittedReplay;
use crate::capture::replay::protocol::Protocol;
use crate::capture::replay::stats::{ReplayMetrics, ReplayStats};
use crate::capture::wire::chunks::ChunkAssembler;
use crate::capture::wire::codec::{Bincode, EventCodec};
use crate::capture::wire::stream::StreamHeader;
use crate::error::TopicPartition;
use crate::log::PartitionReader;
use crate::runtime::status::Status;

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
}
