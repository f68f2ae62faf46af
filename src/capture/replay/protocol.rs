//! The record-by-record checks of a stream captured without exactly-once:
//! stream header first, one session, sequence numbers without gaps (exact
//! duplicates skipped), chunks reassembled. [`crate::capture::replay::consumer`]
//! runs every record through them before timely sees it.

use std::sync::atomic::{AtomicU64, Ordering};

use timely::dataflow::operators::capture::event::Event;
use timely::progress::frontier::MutableAntichain;
use timely::progress::Timestamp;

use crate::capture::wire::chunks::ChunkAssembler;
use crate::capture::wire::codec::EventCodec;
use crate::capture::wire::frame::{self, FrameKind};
use crate::capture::wire::stream::StreamHeader;
use crate::error::{Error, FrameError, Result, TopicPartition};

/// Where the consumer is in the stream protocol.
pub(super) struct Protocol<T> {
    pub(super) id: TopicPartition,
    pub(super) header: Option<StreamHeader>,
    pub(super) next_seq: u64,
    pub(super) frontier: MutableAntichain<T>,
    pub(super) chunks: ChunkAssembler,
    pub(super) last_offset: Option<u64>,
    /// When set, records of every other session are skipped.
    pub(super) only_session: Option<u64>,
    /// Whether the stream header's type names must match `T` and `C`.
    pub(super) check_types: bool,
    /// Records skipped (another session's, a retried duplicate) since the
    /// consumer last took the count for its metric.
    pub(super) skipped: u64,
}

/// What one record amounts to.
pub(super) enum Step<T, C> {
    Deliver(Event<T, C>),
    Skip,
    /// The stream header of an exactly-once stream (session, offset): from
    /// here on [`CommittedReplay`] reads the partition.
    Committed(u64, u64),
    /// The first record is not a stream header: the stream's start is
    /// missing ([`Protocol::start_missing`] says so).
    StartMissing,
}

impl<T: Timestamp> Protocol<T> {
    pub(super) fn protocol_error(&self, offset: u64, reason: impl Into<String>) -> Error {
        Error::Protocol { at: self.id.clone(), offset, reason: reason.into() }
    }

    pub(super) fn frame_error(&self, offset: u64, source: FrameError) -> Error {
        Error::frame_at(&self.id, offset)(source)
    }

    /// The error for a partition whose first record (at `offset`) is not a
    /// stream header; `first_available`: the first offset still stored.
    pub(super) fn start_missing(&self, offset: u64, first_available: Option<u64>) -> Error {
        let start = first_available.map(|o| format!(" (first available offset {o})")).unwrap_or_default();
        self.protocol_error(
            offset,
            format!("stream start missing: first record is not a stream header{start}; its start may have been deleted by retention"),
        )
    }

    pub(super) fn accept<C, K: EventCodec<T, C>>(
        &mut self,
        offset: u64,
        payload: &[u8],
        duplicates: &AtomicU64,
    ) -> Result<Step<T, C>> {
        self.last_offset = Some(offset);
        let frame = frame::decode_frame(payload).map_err(|e| self.frame_error(offset, e))?;
        let fh = frame.header;
        if self.only_session.is_some_and(|session| session != fh.session) {
            self.skipped += 1;
            return Ok(Step::Skip);
        }
        let Some(header) = &self.header else {
            let Some(header) = StreamHeader::of_frame(&frame) else { return Ok(Step::StartMissing) };
            let header = header.map_err(|e| self.frame_error(offset, e))?;
            let checked =
                if self.check_types { header.check_compatible::<T, C>(K::ID) } else { header.check_codec(K::ID) };
            checked.map_err(|reason| self.protocol_error(offset, reason))?;
            self.header = Some(header);
            self.next_seq = 1;
            if fh.exactly_once {
                return Ok(Step::Committed(fh.session, offset));
            }
            return Ok(Step::Skip);
        };
        if fh.session != header.session {
            return Err(self.protocol_error(
                offset,
                format!(
                    "record of session {:016x} inside session {:016x}, which has not completed (its capture was interrupted or re-run)",
                    fh.session, header.session
                ),
            ));
        }
        if fh.seq < self.next_seq {
            duplicates.fetch_add(1, Ordering::Relaxed);
            self.skipped += 1;
            return Ok(Step::Skip);
        }
        if fh.seq > self.next_seq {
            return Err(self.protocol_error(
                offset,
                format!("gap: expected sequence number {} but found {}; records were lost", self.next_seq, fh.seq),
            ));
        }
        self.next_seq += 1;
        if fh.codec != K::ID {
            let err = FrameError::CodecMismatch { expected: K::ID.name(), found: fh.codec.name() };
            return Err(self.frame_error(offset, err));
        }
        let event = match fh.kind {
            FrameKind::Event => K::decode(frame.payload).map_err(|e| self.frame_error(offset, e))?,
            FrameKind::EventChunk => {
                match self.chunks.accept(frame.payload).map_err(|e| self.frame_error(offset, e))? {
                    Some(bytes) => K::decode(&bytes).map_err(|e| self.frame_error(offset, e))?,
                    None => return Ok(Step::Skip),
                }
            }
            FrameKind::StreamHeader => {
                return Err(self.protocol_error(offset, "second stream header inside a session"));
            }
            FrameKind::Commit | FrameKind::Epoch => {
                return Err(self.protocol_error(offset, "commit or epoch record in a stream not captured exactly-once"));
            }
        };
        if let Event::Progress(updates) = &event {
            self.frontier.update_iter(updates.iter().cloned());
        }
        Ok(Step::Deliver(event))
    }
}
