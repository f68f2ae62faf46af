//! Following the epochs of an exactly-once stream, record by record.
//!
//! One partition may hold several epochs of one stream (a capture resumed
//! after a crash), void epochs (a resume that raced a zombie's commit), and
//! records of superseded epochs written after the switch (zombies). [`Chain`]
//! decides, from the records alone and in log order, which records belong to
//! the stream. Replay, resume and inspection all use it, so they agree: the
//! rules are in [`crate::capture::wire::commit`].

use crate::capture::wire::commit::EpochLink;
use crate::capture::wire::frame::{Frame, FrameKind};

/// A commit record of the current epoch, as the chain saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CommitSeen {
    /// Session (epoch) of the commit.
    pub session: u64,
    /// Its sequence number.
    pub seq: u64,
    /// Its offset.
    pub offset: u64,
    /// Whether it is the stream's final commit (empty frontier).
    pub is_final: bool,
}

/// What one record means for the stream.
#[derive(Debug)]
pub(crate) enum ChainStep {
    /// Not part of the stream: a duplicate, a superseded epoch's record (a
    /// zombie), or a record of a void epoch.
    Ignored,
    /// An event or event chunk of the current epoch.
    Data,
    /// A commit of the current epoch; its payload is the caller's to decode.
    Commit(CommitSeen),
    /// A valid epoch record: the stream continues in a new epoch from the
    /// newest commit (whatever the old epoch wrote after it is dropped).
    NewEpoch(#[allow(dead_code)] Box<EpochLink>),
    /// The current epoch lost records (a gap in its sequence numbers, as when
    /// a broker acknowledged a batch it never stored): nothing more of it
    /// counts. Its commits before the gap stand; a resume continues the last
    /// of them, and until one does the stream is incomplete.
    Broken(#[allow(dead_code)] String),
}

/// The state of an exactly-once stream's epochs, fed records in log order.
#[derive(Clone, Debug)]
pub(crate) struct Chain {
    root_session: u64,
    root_offset: u64,
    current: u64,
    next_seq: u64,
    last_commit: Option<CommitSeen>,
    epochs: u32,
    broken: Option<String>,
}

impl Chain {
    /// A chain whose root stream header (exactly-once flag set) of session
    /// `session` sits at `offset`.
    pub(crate) fn new(session: u64, offset: u64) -> Self {
        Chain {
            root_session: session,
            root_offset: offset,
            current: session,
            next_seq: 1,
            last_commit: None,
            epochs: 1,
            broken: None,
        }
    }

    /// Offset of the root stream header.
    pub(crate) fn root_offset(&self) -> u64 {
        self.root_offset
    }

    /// Session of the current epoch.
    pub(crate) fn current_session(&self) -> u64 {
        self.current
    }

    /// The newest commit of the current epoch.
    pub(crate) fn last_commit(&self) -> Option<CommitSeen> {
        self.last_commit
    }

    /// Number of valid epochs seen (1 for a stream never resumed).
    pub(crate) fn epochs(&self) -> u32 {
        self.epochs
    }

    /// Why the current epoch stopped counting, if it lost records.
    pub(crate) fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Whether the stream's final commit has been seen.
    pub(crate) fn is_complete(&self) -> bool {
        self.last_commit.is_some_and(|c| c.is_final)
    }

    /// Classifies the record at `offset`; an `Err` is a broken stream (a gap
    /// in the current epoch, another capture's stream header, a bad epoch record).
    pub(crate) fn accept(&mut self, offset: u64, frame: &Frame<'_>) -> Result<ChainStep, String> {
        let header = frame.header;
        match header.kind {
            FrameKind::StreamHeader if header.session == self.root_session => Ok(ChainStep::Ignored),
            FrameKind::StreamHeader => Err(format!(
                "stream header of session {:016x} inside exactly-once stream {:016x}: another capture (not a \
                 resume) wrote this partition",
                header.session, self.root_session
            )),
            FrameKind::Epoch => {
                let link =
                    EpochLink::from_payload(frame.payload).map_err(|e| format!("unreadable epoch record: {e}"))?;
                let continues_newest = link.continues_session == self.current
                    && link.continues_commit == self.last_commit.map(|c| c.seq)
                    && !self.is_complete();
                if header.session == self.current || !continues_newest {
                    // A duplicate of the current epoch's record, or a void epoch.
                    return Ok(ChainStep::Ignored);
                }
                self.current = header.session;
                self.next_seq = 1;
                self.last_commit = None;
                self.epochs += 1;
                self.broken = None;
                Ok(ChainStep::NewEpoch(Box::new(link)))
            }
            _ if header.session != self.current || self.broken.is_some() => Ok(ChainStep::Ignored),
            _ if header.seq < self.next_seq => Ok(ChainStep::Ignored),
            _ if header.seq > self.next_seq => {
                let reason = format!(
                    "gap at offset {offset}: expected sequence number {} but found {}; records were lost after the \
                     last commit",
                    self.next_seq, header.seq
                );
                self.broken = Some(reason.clone());
                Ok(ChainStep::Broken(reason))
            }
            FrameKind::Commit => {
                self.next_seq += 1;
                let seen = CommitSeen { session: header.session, seq: header.seq, offset, is_final: header.is_final };
                self.last_commit = Some(seen);
                Ok(ChainStep::Commit(seen))
            }
            FrameKind::Event | FrameKind::EventChunk => {
                self.next_seq += 1;
                Ok(ChainStep::Data)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::wire::frame::{decode_frame, encode_frame, FrameHeader};
    use crate::capture::wire::stream::StreamHeader;
    use crate::codec_id::CodecId;

    fn frame(kind: FrameKind, session: u64, seq: u64) -> Vec<u8> {
        let header = FrameHeader { codec: CodecId::Bincode, kind, session, seq, is_final: false, exactly_once: false };
        encode_frame(header, b"").unwrap()
    }

    fn epoch(session: u64, continues_session: u64, continues_commit: Option<u64>) -> Vec<u8> {
        let mut header = StreamHeader::new::<u64, Vec<u64>>(CodecId::Bincode, 0, 1);
        header.session = session;
        EpochLink { header, root_offset: 0, continues_session, continues_commit }.to_frame().unwrap()
    }

    fn follow(records: &[Vec<u8>]) -> (Chain, Vec<String>) {
        let mut chain = Chain::new(1, 0);
        let steps = records
            .iter()
            .enumerate()
            .map(|(offset, bytes)| match chain.accept(offset as u64 + 1, &decode_frame(bytes).unwrap()) {
                Ok(ChainStep::Ignored) => "ignored".to_string(),
                Ok(ChainStep::Data) => "data".to_string(),
                Ok(ChainStep::Commit(seen)) => format!("commit {}", seen.seq),
                Ok(ChainStep::NewEpoch(link)) => format!("epoch {}", link.header.session),
                Ok(ChainStep::Broken(_)) => "broken".to_string(),
                Err(error) => format!("error: {error}"),
            })
            .collect();
        (chain, steps)
    }

    #[test]
    fn a_valid_epoch_switches_and_the_zombie_is_ignored() {
        let (chain, steps) = follow(&[
            frame(FrameKind::Event, 1, 1),
            frame(FrameKind::Commit, 1, 2),
            frame(FrameKind::Event, 1, 3),
            epoch(2, 1, Some(2)),
            frame(FrameKind::Event, 1, 4), // the zombie, after the switch
            frame(FrameKind::Commit, 1, 5),
            frame(FrameKind::Event, 2, 1),
            frame(FrameKind::Event, 2, 1), // a duplicate
        ]);
        assert_eq!(steps, ["data", "commit 2", "data", "epoch 2", "ignored", "ignored", "data", "ignored"]);
        assert_eq!((chain.current_session(), chain.epochs()), (2, 2));
    }

    #[test]
    fn an_epoch_raced_by_a_zombie_commit_is_void() {
        // The resume read commit 2 as the newest, but the zombie committed
        // again (seq 4) before the epoch record landed: every replayer must
        // ignore the epoch, and the next resume continues commit 4.
        let (chain, steps) = follow(&[
            frame(FrameKind::Commit, 1, 1),
            frame(FrameKind::Event, 1, 2),
            frame(FrameKind::Event, 1, 3),
            frame(FrameKind::Commit, 1, 4),
            epoch(2, 1, Some(1)),
            frame(FrameKind::Event, 2, 1),
            epoch(3, 1, Some(4)),
            frame(FrameKind::Event, 3, 1),
        ]);
        assert_eq!(steps, ["commit 1", "data", "data", "commit 4", "ignored", "ignored", "epoch 3", "data"]);
        assert_eq!(chain.current_session(), 3);
    }

    #[test]
    fn a_gap_breaks_the_epoch_until_a_resume_continues_its_last_commit() {
        let (chain, steps) = follow(&[
            frame(FrameKind::Commit, 1, 1),
            frame(FrameKind::Event, 1, 2),
            frame(FrameKind::Event, 1, 5),
            frame(FrameKind::Commit, 1, 6),
            epoch(2, 1, Some(1)),
            frame(FrameKind::Event, 2, 1),
        ]);
        assert_eq!(steps, ["commit 1", "data", "broken", "ignored", "epoch 2", "data"]);
        assert_eq!(chain.broken(), None);
    }

    #[test]
    fn a_foreign_stream_header_is_an_error() {
        let (_, steps) = follow(&[frame(FrameKind::StreamHeader, 9, 0)]);
        assert!(steps[0].contains("another capture"), "{steps:?}");
    }
}
