//! Frames: the bytes of one log record.
//!
//! Every record that timely-kafka writes starts with a fixed 32-byte header so a
//! reader can tell, before decoding anything, that the record is ours, which
//! format and codec wrote it, where it sits in its stream, and that the bytes
//! are intact:
//!
//! ```text
//! offset size field
//!      0    2 magic  b"TK"
//!      2    1 format version (1)
//!      3    1 codec id (0 none, 1 bincode, 2 abomonation)
//!      4    1 kind (1 stream header, 2 event, 3 event chunk, 4 commit, 5 epoch)
//!      5    1 flags: bit 0 = final (the stream's frontier is empty after this
//!               event or commit); bit 1 = exactly-once stream (stream header)
//!      6    2 reserved, zero
//!      8    8 session id (u64 LE): which capture run wrote the record
//!     16    8 sequence number (u64 LE): position in the session, header = 0
//!     24    4 payload length (u32 LE)
//!     28    4 CRC32C of bytes 0..28 followed by the payload
//!     32    . payload
//! ```
//!
//! Decoding never trusts a byte before the checksum has been verified over it,
//! so a corrupt or foreign record is a [`FrameError`], never a panic or an
//! out-of-bounds read.

pub(crate) use crate::codec_id::CodecId;
use crate::error::FrameError;

/// Size of the fixed frame header.
pub(crate) const HEADER_LEN: usize = 32;
/// The two magic bytes that open every frame.
pub(crate) const MAGIC: [u8; 2] = *b"TK";
/// The frame format this build writes and reads.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// The first record of a captured stream: a [`crate::capture::wire::stream::StreamHeader`].
    StreamHeader = 1,
    /// One encoded timely `Event`.
    Event = 2,
    /// A piece of an encoded event too large for one record.
    EventChunk = 3,
    /// An exactly-once commit point: the stream's committed frontier (payload:
    /// token length, token, progress state).
    Commit = 4,
    /// The first record of a resumed exactly-once capture: a stream header
    /// plus the commit it continues.
    Epoch = 5,
}

impl FrameKind {
    fn from_byte(byte: u8) -> Result<Self, FrameError> {
        match byte {
            1 => Ok(FrameKind::StreamHeader),
            2 => Ok(FrameKind::Event),
            3 => Ok(FrameKind::EventChunk),
            4 => Ok(FrameKind::Commit),
            5 => Ok(FrameKind::Epoch),
            other => Err(FrameError::UnknownKind(other)),
        }
    }
}

/// The decoded fixed header of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// Codec of the payload.
    pub codec: CodecId,
    /// What the payload is.
    pub kind: FrameKind,
    /// Capture session that wrote the frame.
    pub session: u64,
    /// Sequence number within the session (stream header = 0).
    pub seq: u64,
    /// Set on the event (or, exactly-once, the commit) after which the
    /// stream's frontier is empty, so the end of a complete session can be
    /// recognised from headers alone.
    pub is_final: bool,
    /// Set on the stream header of an exactly-once stream: replay then
    /// delivers only what commit records cover.
    pub exactly_once: bool,
}

/// Flag bit: the final event of a session.
const FLAG_FINAL: u8 = 1;
/// Flag bit: a stream captured with commit points.
const FLAG_EXACTLY_ONCE: u8 = 2;

/// A verified frame: its header and a view of its payload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame<'a> {
    /// The header fields.
    pub header: FrameHeader,
    /// The payload bytes, checksum verified.
    pub payload: &'a [u8],
}

/// Starts a frame in `out`: clears it and reserves the header.
///
/// Encode the payload by appending to `out`, then call [`finish_frame`].
/// Writing the payload in place avoids a copy per record.
pub(crate) fn begin_frame(out: &mut Vec<u8>) {
    out.clear();
    out.resize(HEADER_LEN, 0);
}

/// Completes a frame begun with [`begin_frame`]: fills in the header and checksum.
///
/// Fails only when the payload exceeds `u32::MAX` bytes.
pub(crate) fn finish_frame(out: &mut [u8], header: FrameHeader) -> Result<(), FrameError> {
    let payload_len = out.len() - HEADER_LEN;
    let len = u32::try_from(payload_len)
        .map_err(|_| FrameError::LengthMismatch { declared: u32::MAX as usize, actual: payload_len })?;
    out[0..2].copy_from_slice(&MAGIC);
    out[2] = FORMAT_VERSION;
    out[3] = header.codec as u8;
    out[4] = header.kind as u8;
    out[5] = if header.is_final { FLAG_FINAL } else { 0 } | if header.exactly_once { FLAG_EXACTLY_ONCE } else { 0 };
    out[6..8].fill(0);
    out[8..16].copy_from_slice(&header.session.to_le_bytes());
    out[16..24].copy_from_slice(&header.seq.to_le_bytes());
    out[24..28].copy_from_slice(&len.to_le_bytes());
    let crc = checksum(&out[..28], &out[HEADER_LEN..]);
    out[28..32].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Encodes a whole frame with the given payload (convenience for small frames).
pub(crate) fn encode_frame(header: FrameHeader, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    begin_frame(&mut out);
    out.extend_from_slice(payload);
    finish_frame(&mut out, header)?;
    Ok(out)
}

/// Verifies and splits a record into header and payload.
pub(crate) fn decode_frame(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
    if let [first, second, ..] = *bytes {
        if [first, second] != MAGIC {
            return Err(FrameError::BadMagic([first, second]));
        }
    }
    if bytes.len() < HEADER_LEN {
        return Err(FrameError::TooShort(bytes.len(), HEADER_LEN));
    }
    if bytes[2] != FORMAT_VERSION {
        return Err(FrameError::UnsupportedVersion(bytes[2]));
    }
    let declared = u32_at(bytes, 24) as usize;
    let actual = bytes.len() - HEADER_LEN;
    if declared != actual {
        return Err(FrameError::LengthMismatch { declared, actual });
    }
    let stored = u32_at(bytes, 28);
    let computed = checksum(&bytes[..28], &bytes[HEADER_LEN..]);
    if stored != computed {
        return Err(FrameError::Checksum { stored, computed });
    }
    let header = FrameHeader {
        codec: CodecId::from_byte(bytes[3])?,
        kind: FrameKind::from_byte(bytes[4])?,
        session: u64_at(bytes, 8),
        seq: u64_at(bytes, 16),
        is_final: bytes[5] & FLAG_FINAL != 0,
        exactly_once: bytes[5] & FLAG_EXACTLY_ONCE != 0,
    };
    Ok(Frame { header, payload: &bytes[HEADER_LEN..] })
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(header), payload)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> FrameHeader {
        FrameHeader {
            codec: CodecId::Bincode,
            kind: FrameKind::Event,
            session: 7,
            seq: 42,
            is_final: true,
            exactly_once: false,
        }
    }

    #[test]
    fn round_trip() {
        let bytes = encode_frame(header(), b"hello").unwrap();
        let frame = decode_frame(&bytes).unwrap();
        assert_eq!(frame.header, header());
        assert_eq!(frame.payload, b"hello");
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let bytes = encode_frame(header(), b"some payload bytes").unwrap();
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(decode_frame(&bad).is_err(), "flip of bit {i} went unnoticed");
        }
    }

    #[test]
    fn truncation_is_detected() {
        let bytes = encode_frame(header(), b"payload").unwrap();
        for len in 0..bytes.len() {
            assert!(decode_frame(&bytes[..len]).is_err());
        }
    }
}
