//! What a topic holds, without replaying it: sessions, events, completeness
//! and frontier of each partition (`capture_inspect`).
//!
//! Inspection reads every stored record once, checks its frame, and follows
//! the progress events of the partition's *newest* session (the one a
//! restarted capture is writing, or the last one that ran). Records that are
//! not frames are counted, not fatal: inspecting a topic other programs wrote
//! into is one of the reasons to inspect. So are records the log reports
//! corrupt (a bad checksum in a file-log segment): counted and skipped.
//!
//! Progress events are decoded without knowing the container type: both
//! codecs write the event's variant first and a progress event as a bincode
//! `Vec<(T, i64)>`, so only the timestamp type must be known. It is chosen
//! from the stream header's type name among the common ones
//! ([`progress_view`]); another type is reported as
//! `frontier=unknown(<type name>)`.
//!
//! An exactly-once stream is followed through its epochs with the same
//! rules replay uses (the same code); its line adds the number
//! of epochs and the committed frontier (what a replay delivers now), and
//! `complete` means its final commit is stored.
//!
//! A [`PartitionSummary`] renders as one line of `key=value` fields, built
//! by [`PartitionSummary::fields`], so a new field is one more entry there.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use timely::progress::frontier::MutableAntichain;
use timely::progress::Timestamp;

use crate::capture::exactly_once::chain::{Chain, ChainStep};
use crate::capture::wire::chunks::split_chunk;
use crate::capture::wire::commit::split_commit;
use crate::capture::wire::decode_bincode;
use crate::capture::wire::frame::{self, Frame, FrameKind};
use crate::capture::wire::stream::StreamHeader;
use crate::codec_id::CodecId;
use crate::error::{Error, FrameError, Result};
use crate::log::LogBackend;

/// The newest session's frontier, as far as inspection can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frontier {
    /// No stream header was found.
    None,
    /// The frontier after the last stored event (Debug rendering; `[]` once complete).
    Known(String),
    /// The timestamp type (named here) is not one inspection can decode.
    Unknown(String),
}

impl fmt::Display for Frontier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frontier::None => write!(f, "none"),
            Frontier::Known(frontier) => write!(f, "{frontier}"),
            Frontier::Unknown(time_type) => write!(f, "unknown({time_type})"),
        }
    }
}

/// What one partition holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionSummary {
    /// Partition index.
    pub partition: u32,
    /// Capture sessions (stream headers) stored.
    pub sessions: u32,
    /// Events of the newest session (a chunked event counts once).
    pub events: u64,
    /// Offset of the first stored record, if any.
    pub first_offset: Option<u64>,
    /// Offset of the last stored record, if any.
    pub last_offset: Option<u64>,
    /// Whether the newest session's final event is stored.
    pub complete: bool,
    /// The newest session's frontier.
    pub frontier: Frontier,
    /// Records that are not timely-kafka frames (or fail their checksum).
    pub foreign: u64,
    /// Records the log itself reports corrupt (skipped: the frontier after
    /// one is only as right as the skipped record was irrelevant to it).
    pub corrupt: u64,
    /// For an exactly-once stream: its valid epochs and committed frontier.
    pub exactly_once: Option<(u32, Frontier)>,
}

impl PartitionSummary {
    /// The fields of the summary line, in order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let offset = |o: Option<u64>| o.map_or_else(|| "none".to_string(), |o| o.to_string());
        let mut fields = vec![
            ("partition", self.partition.to_string()),
            ("sessions", self.sessions.to_string()),
            ("events", self.events.to_string()),
            ("first_offset", offset(self.first_offset)),
            ("last_offset", offset(self.last_offset)),
            ("complete", self.complete.to_string()),
            ("frontier", self.frontier.to_string()),
            ("foreign", self.foreign.to_string()),
            ("corrupt", self.corrupt.to_string()),
            ("exactly_once", self.exactly_once.is_some().to_string()),
        ];
        if let Some((epochs, committed)) = &self.exactly_once {
            fields.push(("epochs", epochs.to_string()));
            fields.push(("committed", committed.to_string()));
        }
        fields
    }
}

impl fmt::Display for PartitionSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<String> = self.fields().into_iter().map(|(key, value)| format!("{key}={value}")).collect();
        write!(f, "{}", fields.join(" "))
    }
}

/// What kind of frame a stored record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordKind {
    /// The first record of a captured stream (codec, types, worker count).
    StreamHeader,
    /// One encoded timely event.
    Event,
    /// A piece of an event too large for one record.
    EventChunk,
    /// A commit point of an exactly-once capture.
    Commit,
    /// The first record of a resumed exactly-once capture.
    Epoch,
}

/// One stored record's frame header, read without decoding its payload:
/// for a tool that reads a topic record by record (what
/// [`inspect_partition`] sums up, one record at a time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordFrame {
    /// What the record holds.
    pub kind: RecordKind,
    /// The capture session that wrote it.
    pub session: u64,
    /// Its sequence number within the session (the stream header's is 0).
    pub seq: u64,
    /// Set on the event (exactly-once: the commit) that completes the stream.
    pub is_final: bool,
}

/// The frame header of `record`, checksum checked; an error if it is not a
/// timely-kafka frame.
pub fn record_frame(record: &[u8]) -> std::result::Result<RecordFrame, FrameError> {
    let header = frame::decode_frame(record)?.header;
    let kind = match header.kind {
        FrameKind::StreamHeader => RecordKind::StreamHeader,
        FrameKind::Event => RecordKind::Event,
        FrameKind::EventChunk => RecordKind::EventChunk,
        FrameKind::Commit => RecordKind::Commit,
        FrameKind::Epoch => RecordKind::Epoch,
    };
    Ok(RecordFrame { kind, session: header.session, seq: header.seq, is_final: header.is_final })
}

/// Summaries of every partition of `topic`; `timeout` bounds each read.
pub fn inspect_topic(log: &dyn LogBackend, topic: &str, timeout: Duration) -> Result<Vec<PartitionSummary>> {
    let info = log.topic_info(topic)?.ok_or_else(|| Error::MissingTopic(topic.to_string()))?;
    (0..info.partitions).map(|partition| inspect_partition(log, topic, partition, timeout)).collect()
}

/// The summary of one partition, reading everything stored now.
pub fn inspect_partition(
    log: &dyn LogBackend,
    topic: &str,
    partition: u32,
    timeout: Duration,
) -> Result<PartitionSummary> {
    let mut reader = log.reader(topic, partition, 0)?;
    let mut summary = PartitionSummary {
        partition,
        sessions: 0,
        events: 0,
        first_offset: None,
        last_offset: None,
        complete: false,
        frontier: Frontier::None,
        foreign: 0,
        corrupt: 0,
        exactly_once: None,
    };
    let mut session: Option<Session> = None;
    let mut chain: Option<Committed> = None;
    let mut skipped = None;
    loop {
        let record = match reader.poll_stored(timeout) {
            Ok(Some(record)) => record,
            Ok(None) => break,
            // A corrupt record is counted and skipped, once per offset.
            Err(Error::Corrupt { offset, .. }) if skipped != Some(offset) => {
                skipped = Some(offset);
                summary.corrupt += 1;
                summary.last_offset = Some(offset);
                reader.seek(offset + 1)?;
                continue;
            }
            Err(error) => return Err(error),
        };
        summary.first_offset.get_or_insert(record.offset);
        summary.last_offset = Some(record.offset);
        let Ok(frame) = frame::decode_frame(record.payload) else {
            summary.foreign += 1;
            continue;
        };
        if let Some(committed) = chain.as_mut() {
            if committed.accept(record.offset, &frame) {
                continue;
            }
        }
        if frame.header.kind == FrameKind::StreamHeader {
            summary.sessions += 1;
            session = Some(Session::start(frame.header.session, frame.payload));
            chain = frame.header.exactly_once.then(|| Committed::start(record.offset, &frame));
            continue;
        }
        if let Some(session) = session.as_mut().filter(|s| s.id == frame.header.session) {
            session.accept(frame.header.codec, frame.header.kind, frame.header.is_final, frame.payload);
        }
    }
    if let Some(session) = session {
        summary.events = session.events;
        summary.complete = session.complete;
        summary.frontier = session.frontier();
    }
    if let Some(committed) = chain {
        summary.events = committed.events;
        summary.complete = committed.chain.is_complete();
        summary.frontier = committed.committed.clone();
        summary.exactly_once = Some((committed.chain.epochs(), committed.committed));
    }
    Ok(summary)
}

/// An exactly-once stream, followed through its epochs.
struct Committed {
    chain: Chain,
    time_type: String,
    codec: CodecId,
    events: u64,
    committed: Frontier,
}

impl Committed {
    fn start(offset: u64, frame: &Frame<'_>) -> Self {
        let header = StreamHeader::from_payload(frame.payload).ok();
        let codec = header.as_ref().and_then(|h| CodecId::from_byte(h.codec).ok()).unwrap_or(CodecId::None);
        let time_type = header.map_or_else(|| "unreadable stream header".to_string(), |h| h.time_type);
        let chain = Chain::new(frame.header.session, offset);
        let mut started = Committed { chain, time_type, codec, events: 0, committed: Frontier::None };
        started.committed = started.frontier_of(None);
        started
    }

    /// Follows one record; `false` if it starts another stream (a new root header).
    fn accept(&mut self, offset: u64, frame: &Frame<'_>) -> bool {
        match self.chain.accept(offset, frame) {
            Ok(ChainStep::Data) => {
                let last_chunk = frame.header.kind == FrameKind::EventChunk
                    && matches!(split_chunk(frame.payload), Some((index, count, _)) if index + 1 == count);
                if frame.header.kind == FrameKind::Event || last_chunk {
                    self.events += 1;
                }
                true
            }
            Ok(ChainStep::Commit(_)) => {
                self.committed = self.frontier_of(Some(frame.payload));
                true
            }
            Ok(_) => true,
            Err(_) => frame.header.kind != FrameKind::StreamHeader,
        }
    }

    /// The frontier of a commit payload (`None`: nothing committed yet).
    fn frontier_of(&self, commit: Option<&[u8]>) -> Frontier {
        let Some(mut view) = progress_view(&self.time_type) else { return Frontier::Unknown(self.time_type.clone()) };
        let Some(commit) = commit else { return Frontier::Known(view.render()) };
        let state = split_commit(commit).map(|(_token, state)| state);
        view.clear();
        match state.map(|state| view.apply(self.codec, state)) {
            Some(Ok(())) => Frontier::Known(view.render()),
            _ => Frontier::Unknown(self.time_type.clone()),
        }
    }
}

/// The newest session, as read so far.
struct Session {
    id: u64,
    events: u64,
    complete: bool,
    time_type: String,
    progress: Option<Box<dyn ProgressView>>,
    chunks: Vec<u8>,
    undecodable: bool,
}

impl Session {
    fn start(id: u64, header_payload: &[u8]) -> Self {
        let header = StreamHeader::from_payload(header_payload).ok();
        let time_type = header.as_ref().map_or_else(|| "unreadable stream header".to_string(), |h| h.time_type.clone());
        let progress = header.as_ref().and_then(|h| progress_view(&h.time_type));
        Session { id, events: 0, complete: false, time_type, progress, chunks: Vec::new(), undecodable: false }
    }

    fn accept(&mut self, codec: CodecId, kind: FrameKind, is_final: bool, payload: &[u8]) {
        self.complete |= is_final;
        let event = match kind {
            FrameKind::Event => payload,
            FrameKind::EventChunk => {
                // Lenient where replay is strict: the event is whole after its last chunk.
                let Some((index, count, piece)) = split_chunk(payload) else { return };
                if index == 0 {
                    self.chunks.clear();
                }
                self.chunks.extend_from_slice(piece);
                if index + 1 < count {
                    return;
                }
                &self.chunks[..]
            }
            FrameKind::StreamHeader | FrameKind::Commit | FrameKind::Epoch => return,
        };
        self.events += 1;
        if let Some(progress) = self.progress.as_mut() {
            if progress.apply(codec, event).is_err() {
                self.undecodable = true;
            }
        }
    }

    fn frontier(&self) -> Frontier {
        match &self.progress {
            Some(progress) if !self.undecodable => Frontier::Known(progress.render()),
            _ => Frontier::Unknown(self.time_type.clone()),
        }
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Follows a stream's frontier from its encoded events.
pub trait ProgressView {
    /// Applies the event's progress updates, if it is a progress event.
    fn apply(&mut self, codec: CodecId, event: &[u8]) -> Result<(), FrameError>;
    /// The frontier (Debug rendering of its elements).
    fn render(&self) -> String;
    /// Forgets every count (the next progress applied is an absolute state).
    fn clear(&mut self);
}

struct Typed<T: Timestamp>(MutableAntichain<T>);

impl<T: Timestamp + DeserializeOwned> ProgressView for Typed<T> {
    fn apply(&mut self, codec: CodecId, event: &[u8]) -> Result<(), FrameError> {
        if let Some(updates) = progress_updates::<T>(codec, event)? {
            self.0.update_iter(updates);
        }
        Ok(())
    }

    fn render(&self) -> String {
        format!("{:?}", self.0.frontier().to_vec())
    }

    fn clear(&mut self) {
        self.0 = MutableAntichain::new();
    }
}

/// A view for a timestamp type named `time_type` (`std::any::type_name`),
/// if it is one of the common ones: the unsigned and signed integers,
/// `()`, and pairs of `u64` / `u32` in timely's `Product`.
pub fn progress_view(time_type: &str) -> Option<Box<dyn ProgressView>> {
    fn view<T: Timestamp + DeserializeOwned>() -> Option<Box<dyn ProgressView>> {
        Some(Box::new(Typed(MutableAntichain::<T>::from_elem(T::minimum()))))
    }
    use timely::order::Product;
    match time_type {
        "u64" => view::<u64>(),
        "u32" => view::<u32>(),
        "usize" => view::<usize>(),
        "i64" => view::<i64>(),
        "i32" => view::<i32>(),
        "isize" => view::<isize>(),
        "()" => view::<()>(),
        "timely::order::Product<u64, u64>" => view::<Product<u64, u64>>(),
        "timely::order::Product<u64, u32>" => view::<Product<u64, u32>>(),
        "timely::order::Product<u32, u32>" => view::<Product<u32, u32>>(),
        _ => None,
    }
}

/// The updates of a progress event encoded by `codec`; `None` for data.
///
/// bincode writes the variant index as a u32 (`Progress` is 0); the
/// abomonation codec writes a tag byte (0 for progress) and the updates with
/// bincode.
fn progress_updates<T: DeserializeOwned>(codec: CodecId, event: &[u8]) -> Result<Option<Vec<(T, i64)>>, FrameError> {
    let rest = match codec {
        CodecId::Bincode => match u32_at(event, 0) {
            Some(0) => &event[4..],
            Some(_) => return Ok(None),
            None => return Err(FrameError::Decode("event shorter than its variant".into())),
        },
        CodecId::Abomonation => match event.first() {
            Some(0) => &event[1..],
            Some(_) => return Ok(None),
            None => return Err(FrameError::Decode("empty event".into())),
        },
        CodecId::None => return Err(FrameError::Decode("event frame without a codec".into())),
    };
    decode_bincode(rest).map(Some)
}
