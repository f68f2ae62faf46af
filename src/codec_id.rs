//! [`CodecId`]: which codec encoded a stream's events.
//!
//! Shared vocabulary of every layer: frames carry it in their header, and the
//! log records it in topic metadata (`LogBackend::create_topic`), so it lives
//! below both rather than in either.

use crate::error::FrameError;

/// Which codec encoded the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodecId {
    /// Payload is not an event (stream headers use bincode internally).
    None = 0,
    /// serde + bincode 1.x.
    Bincode = 1,
    /// abomonation (trusted data only).
    Abomonation = 2,
}

impl CodecId {
    /// Parses the codec byte.
    pub fn from_byte(byte: u8) -> Result<Self, FrameError> {
        match byte {
            0 => Ok(CodecId::None),
            1 => Ok(CodecId::Bincode),
            2 => Ok(CodecId::Abomonation),
            other => Err(FrameError::UnknownCodec(other)),
        }
    }

    /// The codec's name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CodecId::None => "none",
            CodecId::Bincode => "bincode",
            CodecId::Abomonation => "abomonation",
        }
    }
}
