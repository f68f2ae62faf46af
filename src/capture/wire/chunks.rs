//! Events too large for one record: the chunk layout, written and read here only.
//!
//! The producer splits such an event into chunk frames with consecutive
//! sequence numbers; each chunk payload is `[index: u32 LE][count: u32 LE][bytes]`.

use crate::error::FrameError;

/// Bytes of a chunk payload before the piece of the event it carries.
pub(crate) const CHUNK_HEADER_LEN: usize = 8;

/// Appends chunk `index` of `count`'s header; the piece follows it.
pub(crate) fn put_chunk_header(out: &mut Vec<u8>, index: u32, count: u32) {
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
}

/// A chunk payload's index, count and piece; `None` if shorter than its header.
pub(crate) fn split_chunk(payload: &[u8]) -> Option<(u32, u32, &[u8])> {
    let (index, rest) = payload.split_first_chunk::<4>()?;
    let (count, piece) = rest.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*index), u32::from_le_bytes(*count), piece))
}

/// Collects the chunks of one event, in order.
#[derive(Debug, Default)]
pub(crate) struct ChunkAssembler {
    bytes: Vec<u8>,
    count: u32,
    next: u32,
}

impl ChunkAssembler {
    /// Adds a chunk; returns the whole encoded event after its last chunk.
    pub(crate) fn accept(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        let Some((index, count, piece)) = split_chunk(payload) else {
            return Err(FrameError::Chunk(format!("chunk shorter than its {CHUNK_HEADER_LEN}-byte header")));
        };
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
        self.bytes.extend_from_slice(piece);
        self.next = index + 1;
        if self.next == count {
            self.next = 0;
            Ok(Some(std::mem::take(&mut self.bytes)))
        } else {
            Ok(None)
        }
    }

    /// Forgets a partly assembled event (replay moved elsewhere).
    pub(crate) fn reset(&mut self) {
        *self = ChunkAssembler::default();
    }
}
