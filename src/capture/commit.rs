//! Commit points and epochs: the records that make a capture exactly-once.
//!
//! An exactly-once stream (its stream header carries the exactly-once flag)
//! interleaves its events with **commit records**. A commit at sequence
//! number `s` says: every event of this session before `s` is stored, and
//! the stream's progress state after them is `state` (the consolidated
//! progress counts, whose frontier `F` is the *committed frontier*). Replay
//! hands timely only what commits cover: the progress up to the newest
//! commit, and every message whose times are all *not beyond* `F` (a message
//! at a time `t >= F` may still be regenerated after a crash, so it waits
//! for a commit whose frontier has passed it). Everything else is held back
//! and, if the capture dies, dropped.
//!
//! A capture resumed after a crash opens a new **epoch**: its first record is
//! an epoch record (a stream header plus [`EpochLink`]) naming the commit it
//! continues. The epoch is valid only if that commit is the newest commit of
//! the stream's current epoch before the epoch record; replay then drops the
//! old epoch's uncommitted tail and ignores every later record of the old
//! epoch (a zombie: the old process, still writing). An epoch that names an
//! older commit is void and ignored as a whole, so every replayer — whenever
//! it started reading — agrees on the same sequence; the resuming writer
//! checks its epoch record is valid before it captures anything.
//!
//! Commit payload: `[token length: u32 LE][token][progress state]`, the state
//! encoded by the stream's codec as an `Event::Progress`, so any timestamp the
//! codec handles can be committed. The token is opaque bytes the user
//! supplies (source offsets, say) and gets back on resume.

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::capture::Event;
use timely::progress::frontier::{Antichain, MutableAntichain};
use timely::progress::Timestamp;

use crate::capture::codec::{decode_bincode, encode_bincode, EventCodec};
use crate::capture::frame::{self, FrameHeader, FrameKind};
use crate::capture::stream::StreamHeader;
use crate::codec_id::CodecId;
use crate::error::FrameError;

/// What a commit record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit<T> {
    /// Consolidated progress counts of the stream after the committed events.
    pub state: Vec<(T, i64)>,
    /// The user's resume token at this commit.
    pub token: Vec<u8>,
}

impl<T: Timestamp> Commit<T> {
    /// The committed frontier: the minimal times of `state`.
    pub fn frontier(&self) -> Antichain<T> {
        frontier_of(&self.state)
    }

    /// The state of a stream nothing has been committed of: timely's
    /// implicit initial capability at the minimum time.
    pub fn initial() -> Self {
        Commit { state: vec![(T::minimum(), 1)], token: Vec::new() }
    }

    /// Encodes the commit's payload with codec `K`.
    pub fn encode<C, K: EventCodec<T, C>>(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let token_len =
            u32::try_from(self.token.len()).map_err(|_| FrameError::Decode("resume token longer than 4 GiB".into()))?;
        out.extend_from_slice(&token_len.to_le_bytes());
        out.extend_from_slice(&self.token);
        K::encode(&Event::Progress(self.state.clone()), out)
    }

    /// Decodes a commit payload written with codec `K`.
    pub fn decode<C, K: EventCodec<T, C>>(payload: &[u8]) -> Result<Self, FrameError> {
        let Some((len, rest)) = payload.split_first_chunk::<4>() else {
            return Err(FrameError::Decode("commit record shorter than its token length".into()));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(FrameError::Decode(format!("commit token of {len} bytes, {} present", rest.len())));
        }
        let (token, state) = rest.split_at(len);
        match K::decode(state)? {
            Event::Progress(state) => Ok(Commit { state, token: token.to_vec() }),
            Event::Messages(..) => Err(FrameError::Decode("commit record holds messages, not progress".into())),
        }
    }
}

/// The frontier of a multiset of progress counts.
pub fn frontier_of<T: Timestamp>(state: &[(T, i64)]) -> Antichain<T> {
    let mut counts = MutableAntichain::new();
    counts.update_iter(state.iter().cloned());
    counts.frontier().to_owned()
}

/// The link an epoch record carries from a resumed capture to the stream it continues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochLink {
    /// The new epoch's stream header (its own session id, same types).
    pub header: StreamHeader,
    /// Offset of the stream's first (root) stream header: where replay starts.
    pub root_offset: u64,
    /// Session of the epoch continued.
    pub continues_session: u64,
    /// Sequence number of the commit continued; `None`: the continued epoch
    /// had committed nothing, and the stream restarts from its beginning.
    pub continues_commit: Option<u64>,
}

impl EpochLink {
    /// The epoch record: kind `Epoch`, the new session, sequence number 0.
    pub fn to_frame(&self) -> Result<Vec<u8>, FrameError> {
        let mut payload = Vec::new();
        encode_bincode(self, &mut payload)?;
        let header = FrameHeader {
            codec: CodecId::None,
            kind: FrameKind::Epoch,
            session: self.header.session,
            seq: 0,
            is_final: false,
            exactly_once: true,
        };
        frame::encode_frame(header, &payload)
    }

    /// Decodes an epoch record's payload.
    pub fn from_payload(payload: &[u8]) -> Result<Self, FrameError> {
        decode_bincode(payload)
    }
}

/// Whether a message stamped `stamp` is covered by a commit at `frontier`:
/// every time of the stamp is *not beyond* it (so a resumed capture, which
/// regenerates the times beyond it, cannot produce it again).
pub fn committed_at<T: Timestamp>(stamp: &[T], frontier: &Antichain<T>) -> bool {
    stamp.iter().all(|time| !frontier.less_equal(time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::codec::Bincode;

    #[test]
    fn commit_round_trip() {
        let commit = Commit { state: vec![(5u64, 1), (9, 2)], token: b"offsets".to_vec() };
        let mut bytes = Vec::new();
        commit.encode::<Vec<u64>, Bincode>(&mut bytes).unwrap();
        let back = Commit::<u64>::decode::<Vec<u64>, Bincode>(&bytes).unwrap();
        assert_eq!(back, commit);
        assert_eq!(back.frontier().elements(), &[5]);
        for len in 0..bytes.len() {
            assert!(Commit::<u64>::decode::<Vec<u64>, Bincode>(&bytes[..len]).is_err(), "prefix {len}");
        }
    }

    #[test]
    fn committed_means_not_beyond_the_frontier() {
        let frontier = Antichain::from_elem(10u64);
        assert!(committed_at(&[9u64], &frontier));
        assert!(!committed_at(&[10u64], &frontier));
        assert!(!committed_at(&[3u64, 12], &frontier));
        assert!(committed_at(&[10u64], &Antichain::new()));
    }
}
