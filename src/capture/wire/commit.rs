//! The payloads of the two exactly-once records: commit and epoch.
//!
//! Commit payload: `[token length: u32 LE][token][progress state]`, the state
//! encoded by the stream's codec as an `Event::Progress`, so any timestamp the
//! codec handles can be committed. The token is opaque bytes the user
//! supplies (source offsets, say) and gets back on resume.
//!
//! Epoch payload: an [`EpochLink`] in the crate's bincode, naming the commit
//! a resumed capture continues. What the records *mean* to a replay (which
//! messages a commit covers, which epochs are valid) is
//! [`crate::capture::exactly_once`]'s concern, not the format's.

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::capture::Event;
use timely::progress::frontier::{Antichain, MutableAntichain};
use timely::progress::Timestamp;

use crate::capture::wire::bincode::{decode_bincode, encode_bincode};
use crate::capture::wire::codec::EventCodec;
use crate::capture::wire::frame::{self, FrameHeader, FrameKind};
use crate::capture::wire::stream::StreamHeader;
use crate::codec_id::CodecId;
use crate::error::FrameError;

/// What a commit record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Commit<T> {
    /// Consolidated progress counts of the stream after the committed events.
    pub state: Vec<(T, i64)>,
    /// The user's resume token at this commit.
    pub token: Vec<u8>,
}

impl<T: Timestamp> Commit<T> {
    /// The committed frontier: the minimal times of `state`.
    pub(crate) fn frontier(&self) -> Antichain<T> {
        frontier_of(&self.state)
    }

    /// The state of a stream nothing has been committed of: timely's
    /// implicit initial capability at the minimum time.
    pub(crate) fn initial() -> Self {
        Commit { state: vec![(T::minimum(), 1)], token: Vec::new() }
    }

    /// Encodes the commit's payload with codec `K`.
    pub(crate) fn encode<C, K: EventCodec<T, C>>(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let token_len =
            u32::try_from(self.token.len()).map_err(|_| FrameError::Decode("resume token longer than 4 GiB".into()))?;
        out.extend_from_slice(&token_len.to_le_bytes());
        out.extend_from_slice(&self.token);
        K::encode(&Event::Progress(self.state.clone()), out)
    }

    /// Decodes a commit payload written with codec `K`.
    pub(crate) fn decode<C, K: EventCodec<T, C>>(payload: &[u8]) -> Result<Self, FrameError> {
        let Some((token, state)) = split_commit(payload) else {
            return Err(FrameError::Decode(format!(
                "commit record of {} bytes shorter than its token length says",
                payload.len()
            )));
        };
        match K::decode(state)? {
            Event::Progress(state) => Ok(Commit { state, token: token.to_vec() }),
            Event::Messages(..) => Err(FrameError::Decode("commit record holds messages, not progress".into())),
        }
    }
}

/// A commit payload's token and encoded progress state; `None` if shorter
/// than its token length says.
pub(crate) fn split_commit(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = payload.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// The frontier of a multiset of progress counts.
pub(crate) fn frontier_of<T: Timestamp>(state: &[(T, i64)]) -> Antichain<T> {
    let mut counts = MutableAntichain::new();
    counts.update_iter(state.iter().cloned());
    counts.frontier().to_owned()
}

/// The link an epoch record carries from a resumed capture to the stream it continues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EpochLink {
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
    pub(crate) fn to_frame(&self) -> Result<Vec<u8>, FrameError> {
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
    pub(crate) fn from_payload(payload: &[u8]) -> Result<Self, FrameError> {
        decode_bincode(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::wire::codec::Bincode;

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
}
