//! Codecs: timely `Event<T, C>` <-> payload bytes.
//!
//! A codec is a type parameter, not a runtime value, because the two codecs put
//! different bounds on `T` and `C`: bincode needs serde, abomonation needs
//! `Abomonation`. [`Bincode`] is the default and is safe on any input.
//! `Abomonation` (cargo feature `abomonation`) copies containers as raw
//! memory: it is fast, and it is only for data written by a trusted build of
//! the same program, because abomonation reinterprets the bytes in place.
//! [`Bincode`] encodes and decodes `Vec`s of plain numbers in bulk
//! (`plain.rs`), byte for byte as serde would; `bincode.rs` holds the
//! bincode settings every payload of the crate shares.

use serde::{de::DeserializeOwned, Serialize};
use timely::dataflow::operators::capture::Event;

use crate::capture::wire::bincode::{decode_bincode, encode_bincode};
use crate::capture::wire::plain;
use crate::codec_id::CodecId;
use crate::error::FrameError;

/// Encodes and decodes timely events.
pub trait EventCodec<T, C>: 'static {
    /// The id written into each frame header.
    const ID: CodecId;
    /// Appends the encoding of `event` to `out`.
    fn encode(event: &Event<T, C>, out: &mut Vec<u8>) -> Result<(), FrameError>;
    /// Decodes one event from exactly `payload`.
    fn decode(payload: &[u8]) -> Result<Event<T, C>, FrameError>;
}

/// serde + bincode 1.x: the safe default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bincode;

impl<T, C> EventCodec<T, C> for Bincode
where
    T: Serialize + DeserializeOwned + Ord + 'static,
    C: Serialize + DeserializeOwned + 'static,
{
    const ID: CodecId = CodecId::Bincode;

    fn encode(event: &Event<T, C>, out: &mut Vec<u8>) -> Result<(), FrameError> {
        if let Some(encoded) = plain::encode(event, out) {
            return encoded;
        }
        encode_bincode(event, out)
    }

    fn decode(payload: &[u8]) -> Result<Event<T, C>, FrameError> {
        if let Some(event) = plain::decode(payload) {
            return Ok(event);
        }
        decode_bincode(payload)
    }
}

#[cfg(feature = "abomonation")]
pub use self::abomonation_codec::Abomonation;

#[cfg(feature = "abomonation")]
mod abomonation_codec {
    use super::*;
    use timely::progress::Stamp;

    /// abomonation for containers, bincode for the (small) stamps and progress.
    ///
    /// **Trusted data only**: the checksum rules out accidental corruption, but
    /// a crafted record can still describe memory that abomonation will trust.
    ///
    /// **Alignment at most 8**: abomonation decodes in place, and the bytes
    /// it decodes from are aligned to 8 (the container starts 8-aligned, and
    /// abomonation puts a `Vec`'s elements right after its 24-byte header).
    /// A type aligned to more than 8 (`u128`, `i128`, `#[repr(align(16))]`)
    /// anywhere in the container would be read misaligned, which is
    /// undefined behaviour. The codec refuses a container aligned to more
    /// than 8 at compile time; it cannot see the element types inside a
    /// `Vec`, so for `Vec<u128>` and the like use [`crate::codec::Bincode`].
    ///
    /// ```compile_fail
    /// # use timely_kafka::{Abomonation, EventCodec};
    /// #[derive(Clone)]
    /// #[repr(align(16))]
    /// struct Wide(u64);
    /// impl abomonation::Abomonation for Wide {}
    /// let mut out = Vec::new();
    /// let event = timely::dataflow::operators::capture::Event::Progress(vec![(0u64, 1i64)]);
    /// <Abomonation as EventCodec<u64, Wide>>::encode(&event, &mut out).unwrap();
    /// ```
    ///
    /// Payload: tag byte 0 + bincode `Vec<(T, i64)>` for progress; tag byte 1,
    /// stamp length (u32 LE), bincode stamp, zero padding to a multiple of 8,
    /// then the abomonated container, for messages.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Abomonation;

    /// The alignment [`Abomonation`] decodes with.
    const DECODE_ALIGN: usize = std::mem::align_of::<u64>();

    impl<T, C> EventCodec<T, C> for Abomonation
    where
        T: Serialize + DeserializeOwned + Ord + 'static,
        C: abomonation::Abomonation + Clone + 'static,
    {
        const ID: CodecId = CodecId::Abomonation;

        fn encode(event: &Event<T, C>, out: &mut Vec<u8>) -> Result<(), FrameError> {
            const { assert!(std::mem::align_of::<C>() <= DECODE_ALIGN, "abomonation: container aligned to more than 8") };
            match event {
                Event::Progress(updates) => {
                    out.push(0);
                    encode_bincode(updates, out)
                }
                Event::Messages(stamp, container) => {
                    out.push(1);
                    let len_at = out.len();
                    out.extend_from_slice(&[0; 4]);
                    let stamp_at = out.len();
                    encode_bincode(stamp, out)?;
                    let stamp_len = (out.len() - stamp_at) as u32;
                    out[len_at..len_at + 4].copy_from_slice(&stamp_len.to_le_bytes());
                    while !(out.len() - crate::capture::wire::frame::HEADER_LEN).is_multiple_of(8) {
                        out.push(0);
                    }
                    // SAFETY: encoding only reads `container`.
                    unsafe { abomonation::encode(container, out) }
                        .map_err(|e| FrameError::Decode(format!("abomonation encode: {e}")))
                }
            }
        }

        fn decode(payload: &[u8]) -> Result<Event<T, C>, FrameError> {
            const { assert!(std::mem::align_of::<C>() <= DECODE_ALIGN, "abomonation: container aligned to more than 8") };
            let (&tag, rest) = payload.split_first().ok_or_else(|| FrameError::Decode("empty payload".into()))?;
            match tag {
                0 => Ok(Event::Progress(decode_bincode(rest)?)),
                1 => {
                    if rest.len() < 4 {
                        return Err(FrameError::Decode("truncated stamp length".into()));
                    }
                    let stamp_len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    let stamp_bytes =
                        rest.get(4..4 + stamp_len).ok_or_else(|| FrameError::Decode("truncated stamp".into()))?;
                    let stamp: Stamp<T> = decode_bincode(stamp_bytes)?;
                    let body_at = (1 + 4 + stamp_len).div_ceil(8) * 8;
                    let body =
                        payload.get(body_at..).ok_or_else(|| FrameError::Decode("truncated container".into()))?;
                    // abomonation reads the bytes in place: copy them into a
                    // buffer aligned for any primitive before decoding.
                    let mut aligned = vec![0u64; body.len().div_ceil(8)];
                    // SAFETY: u64 has no invalid bit patterns and the byte view
                    // covers exactly the allocation.
                    let bytes =
                        unsafe { std::slice::from_raw_parts_mut(aligned.as_mut_ptr() as *mut u8, aligned.len() * 8) };
                    bytes[..body.len()].copy_from_slice(body);
                    let bytes = &mut bytes[..body.len()];
                    // SAFETY: length and checksum were verified by the frame
                    // layer; the content is trusted (see the type's docs).
                    match unsafe { abomonation::decode::<C>(bytes) } {
                        Some((container, [])) => Ok(Event::Messages(stamp, container.clone())),
                        Some(_) => Err(FrameError::Decode("trailing bytes after container".into())),
                        None => Err(FrameError::Decode("abomonation decode failed".into())),
                    }
                }
                other => Err(FrameError::Decode(format!("unknown event tag {other}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timely::progress::Stamp;

    type E = Event<u64, Vec<u64>>;

    fn events() -> Vec<E> {
        vec![
            Event::Progress(vec![(0, 1), (5, -1)]),
            Event::Messages(Stamp::from_elem(3), (0..100).collect()),
            Event::Messages(Stamp::new(), vec![]),
        ]
    }

    #[test]
    fn bincode_round_trip() {
        for event in events() {
            let mut out = Vec::new();
            <Bincode as EventCodec<u64, Vec<u64>>>::encode(&event, &mut out).unwrap();
            let back: E = <Bincode as EventCodec<u64, Vec<u64>>>::decode(&out).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn bincode_rejects_huge_length_prefix() {
        // Messages variant, empty stamp, then a vector claiming 2^60 elements.
        let mut bytes = 1u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(<Bincode as EventCodec<u64, Vec<u64>>>::decode(&bytes).is_err());
    }

    #[cfg(feature = "abomonation")]
    #[test]
    fn abomonation_round_trip() {
        for event in events() {
            let mut out = vec![0u8; crate::capture::wire::frame::HEADER_LEN];
            <Abomonation as EventCodec<u64, Vec<u64>>>::encode(&event, &mut out).unwrap();
            let payload = &out[crate::capture::wire::frame::HEADER_LEN..];
            let back: E = <Abomonation as EventCodec<u64, Vec<u64>>>::decode(payload).unwrap();
            assert_eq!(back, event);
        }
    }
}
