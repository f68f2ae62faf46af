//! How a consumer opens: the session of a partition it should replay,
//! and, up front, that session's stream header.
//!
//! A replay needs one stream's header before it starts (how many streams
//! the capture wrote), and reading it also puts the replay's first fetch
//! under way. Reading it is best effort: anything that is not the chosen
//! session's header is read again by `next`, which reports it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use timely::progress::Timestamp;

use super::EventConsumer;
use crate::capture::replay::protocol::Step;
use crate::capture::replay::session::choose_session;
use crate::capture::wire::codec::EventCodec;
use crate::capture::wire::frame::{self, FrameKind};
use crate::error::Result;
use crate::log::{LogBackend, PartitionReader};

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
}
