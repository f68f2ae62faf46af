//! Choosing which capture session of a partition to replay.
//!
//! A partition can hold more than one capture session: a capture that was
//! restarted after a crash appends a new session after the torn remains of
//! the old one. Replaying across a session boundary would feed timely two
//! unrelated progress histories, so replay picks exactly one session: by
//! default the newest *complete* one (the one whose final event — flagged in
//! its frame header — is present), and says so when it had a choice.
//!
//! The common case costs two record reads: the last record of the partition
//! is the final event of session S with sequence number N, and the record N
//! offsets earlier is S's header. Anything else falls back to a scan of frame
//! headers from the start of the partition.

use std::time::Duration;

use crate::capture::wire::commit::EpochLink;
use crate::capture::wire::frame::{self, FrameKind};
use crate::error::Result;
use crate::log::{LogBackend, PartitionReader};

/// The session replay will follow in one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionChoice {
    /// Session id.
    pub session: u64,
    /// Offset of the session's stream header: replay starts here.
    pub start_offset: u64,
    /// Whether the session's final event was seen when choosing.
    pub complete: bool,
    /// What a user should know about the choice (other sessions skipped,
    /// newest session incomplete...), if anything.
    pub note: Option<String>,
}

/// How long the fast path waits for records beyond the reported end (a
/// Kafka reader returns at the end-of-partition event, a file reader at once).
const FOLLOW_TIMEOUT: Duration = Duration::from_millis(200);

/// What a header scan saw of one session.
#[derive(Clone, Debug)]
struct SeenSession {
    session: u64,
    start_offset: u64,
    complete: bool,
}

/// Chooses the session to replay in `topic`/`partition`, reading what is
/// stored now, and returns a reader positioned at its start. `None`: the
/// partition is empty or holds no stream header (replay then starts at
/// offset 0 and reports what it finds there).
pub(crate) fn choose_session(
    log: &dyn LogBackend,
    topic: &str,
    partition: u32,
    timeout: Duration,
) -> Result<(Option<SessionChoice>, Box<dyn PartitionReader>)> {
    let mut reader = log.reader(topic, partition, 0)?;
    let choice = choose(reader.as_mut(), timeout)?;
    reader.seek(choice.as_ref().map_or(0, |c| c.start_offset))?;
    Ok((choice, reader))
}

fn choose(reader: &mut dyn PartitionReader, timeout: Duration) -> Result<Option<SessionChoice>> {
    // The fast path reads on to the real end by itself, so the end the
    // log's metadata reports is enough to start it (and saves the fetch
    // `end_offset` makes on Kafka to check it).
    let reported = match reader.reported_end_offset()? {
        Some(reported) => reported,
        None => reader.end_offset()?,
    };
    if reported > 0 {
        if let Some(choice) = fast_path(reader, reported, timeout) {
            return Ok(Some(choice));
        }
    }
    let end = reader.end_offset()?;
    if end == 0 {
        return Ok(None);
    }
    // Tried above already when the reported end was the real one.
    if end != reported {
        if let Some(choice) = fast_path(reader, end, timeout) {
            return Ok(Some(choice));
        }
    }
    let sessions = scan(reader, end, timeout)?;
    let Some(newest) = sessions.last().cloned() else { return Ok(None) };
    let older = sessions.len() - 1;
    if newest.complete {
        let note = (older > 0).then(|| {
            format!(
                "replaying the newest of {} sessions, {:016x} at offset {}",
                sessions.len(),
                newest.session,
                newest.start_offset
            )
        });
        return Ok(Some(SessionChoice {
            session: newest.session,
            start_offset: newest.start_offset,
            complete: true,
            note,
        }));
    }
    match sessions.iter().rev().find(|s| s.complete) {
        Some(complete) => Ok(Some(SessionChoice {
            session: complete.session,
            start_offset: complete.start_offset,
            complete: true,
            note: Some(format!(
                "newest session {:016x} at offset {} is incomplete; replaying the newest complete session {:016x} at offset {}",
                newest.session, newest.start_offset, complete.session, complete.start_offset
            )),
        })),
        None => Ok(Some(SessionChoice {
            session: newest.session,
            start_offset: newest.start_offset,
            complete: false,
            note: (older > 0).then(|| {
                format!(
                    "no complete session; following the newest, {:016x} at offset {}",
                    newest.session, newest.start_offset
                )
            }),
        })),
    }
}

/// The last record is a final event and its session's header sits where its
/// sequence number says: that session is complete and the newest.
///
/// If the record at `end - 1` is not a final event, reads on to the
/// partition's real end: some brokers (tansu) report an end offset short of
/// the last record, and stopping there would cost a scan of the partition.
fn fast_path(reader: &mut dyn PartitionReader, end: u64, timeout: Duration) -> Option<SessionChoice> {
    reader.seek(end - 1).ok()?;
    let record = reader.poll(timeout).ok()??;
    let mut last = (record.offset, frame::decode_frame(record.payload).ok()?.header);
    while !last.1.is_final {
        let Some(record) = reader.poll_stored(FOLLOW_TIMEOUT).ok()? else { break };
        last = (record.offset, frame::decode_frame(record.payload).ok()?.header);
    }
    let (last_offset, header) = last;
    if !header.is_final || last_offset < end - 1 {
        return None;
    }
    let start = last_offset.checked_sub(header.seq)?;
    if start == 0 {
        // The common case; the consumer checks the header it starts at.
        return Some(SessionChoice { session: header.session, start_offset: 0, complete: true, note: None });
    }
    reader.seek(start).ok()?;
    let record = reader.poll(timeout).ok()??;
    let first = frame::decode_frame(record.payload).ok()?;
    if record.offset != start || first.header.session != header.session {
        return None;
    }
    let (session, start) = match first.header.kind {
        FrameKind::StreamHeader => (header.session, start),
        // The last epoch of a resumed exactly-once stream: replay starts at
        // the stream's root header and follows its epochs.
        FrameKind::Epoch => {
            let root = EpochLink::from_payload(first.payload).ok()?.root_offset;
            reader.seek(root).ok()?;
            let record = reader.poll(timeout).ok()??;
            let root_header = frame::decode_frame(record.payload).ok()?.header;
            if record.offset != root || root_header.kind != FrameKind::StreamHeader || !root_header.exactly_once {
                return None;
            }
            (root_header.session, root)
        }
        _ => return None,
    };
    let note = (start > 0).then(|| {
        format!("replaying session {session:016x} from offset {start}; earlier records belong to older sessions")
    });
    Some(SessionChoice { session, start_offset: start, complete: true, note })
}

/// Reads frame headers from offset 0 up to `end`.
fn scan(reader: &mut dyn PartitionReader, end: u64, timeout: Duration) -> Result<Vec<SeenSession>> {
    reader.seek(0)?;
    let mut sessions: Vec<SeenSession> = Vec::new();
    let mut epochs: Vec<(u64, u64)> = Vec::new();
    while let Some(record) = reader.poll(timeout)? {
        let offset = record.offset;
        if let Ok(frame) = frame::decode_frame(record.payload) {
            let header = frame.header;
            if header.kind == FrameKind::StreamHeader {
                sessions.push(SeenSession { session: header.session, start_offset: offset, complete: false });
            } else if header.kind == FrameKind::Epoch {
                // A resumed exactly-once epoch belongs to its stream's root.
                if let Ok(link) = EpochLink::from_payload(frame.payload) {
                    epochs.push((header.session, link.root_offset));
                }
            } else if header.is_final {
                let root = epochs.iter().rev().find(|(session, _)| *session == header.session).map(|(_, root)| *root);
                let seen = match root {
                    Some(root) => sessions.iter_mut().rev().find(|s| s.start_offset == root),
                    None => sessions.iter_mut().rev().find(|s| s.session == header.session),
                };
                if let Some(seen) = seen {
                    seen.complete = true;
                }
            }
        }
        if offset + 1 >= end {
            break;
        }
    }
    Ok(sessions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::file::FileLog;
    use crate::log::Record;
    use crate::EventProducer;
    use timely::dataflow::operators::{Capture, ToStream};

    /// A reader whose end offset falls short of the last record, as tansu's does.
    struct ShortEnd(Box<dyn PartitionReader>, u64);

    impl PartitionReader for ShortEnd {
        fn partition(&self) -> &crate::error::TopicPartition {
            self.0.partition()
        }
        fn poll(&mut self, timeout: Duration) -> Result<Option<Record<'_>>> {
            self.0.poll(timeout)
        }
        fn poll_stored(&mut self, timeout: Duration) -> Result<Option<Record<'_>>> {
            self.0.poll_stored(timeout)
        }
        fn end_offset(&mut self) -> Result<u64> {
            Ok(self.0.end_offset()? - self.1)
        }
        fn seek(&mut self, offset: u64) -> Result<()> {
            self.0.seek(offset)
        }
    }

    impl crate::log::ReaderHooks for ShortEnd {}

    #[test]
    fn an_end_offset_reported_short_still_finds_the_final_event() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        log.create_topic("t", 1, false).unwrap();
        let producer = EventProducer::<u64, Vec<u64>>::new(log.writer("t", 0).unwrap(), 0, 1).unwrap();
        timely::execute_directly(move |worker| {
            worker.dataflow::<u64, _, _>(|scope| {
                (0..10_000u64).to_stream(scope).container::<Vec<u64>>().capture_into(producer);
            });
        });
        let reader = ShortEnd(log.reader("t", 0, 0).unwrap(), 5);
        let mut reader: Box<dyn PartitionReader> = Box::new(reader);
        let end = reader.end_offset().unwrap();
        assert!(end >= 5, "a stream of several records: end {end}");
        let choice = fast_path(reader.as_mut(), end, Duration::from_secs(1));
        assert_eq!(choice.map(|c| (c.start_offset, c.complete)), Some((0, true)));
    }
}
