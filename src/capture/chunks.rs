//! Reassembling an event that was too large for one record.
//!
//! The producer splits such an event into chunk frames with consecutive
//! sequence numbers; each chunk payload is `[index: u32 LE][count: u32 LE][bytes]`.

use crate::error::FrameError;

/// Collects the chunks of one event, in order.
#[derive(Debug, Default)]
pub struct ChunkAssembler {
    bytes: Vec<u8>,
    count: u32,
    next: u32,
}

impl ChunkAssembler {
    /// Adds a chunk; returns the whole encoded event after its last chunk.
    pub fn accept(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        if payload.len() < 8 {
            return Err(FrameError::Chunk("chunk shorter than its 8-byte header".into()));
        }
        let index = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
        let count = u32::from_le_bytes([payload[4], payload[5], payload[6], payload[7]]);
        if index != self.next || (index > 0 && count != self.count) || count == 0 || index >= count {
            return Err(FrameError::Chunk(format!(
                "chunk {index} of {count} where chunk {} of {} was expected",
                self.next, self.count
            )));
        }
        if index == 0 {
            self.bytes.clear();
            self.count = count;
        }
        self.bytes.extend_from_slice(&payload[8..]);
        self.next = index + 1;
        if self.next == count {
            self.next = 0;
            Ok(Some(std::mem::take(&mut self.bytes)))
        } else {
            Ok(None)
        }
    }

    /// Forgets a partly assembled event (replay moved elsewhere).
    pub fn reset(&mut self) {
        *self = ChunkAssembler::default();
    }
}
