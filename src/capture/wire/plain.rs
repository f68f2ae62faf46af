//! Bulk bincode for containers of plain numbers.
//!
//! bincode 1.x encodes a `Vec<u64>` as its length (`u64` LE) followed by the
//! numbers' little-endian bytes, and serde walks it one element at a time
//! (a visitor call, a bounds check and a push per number). For the most
//! common capture, a stream of `Vec` of a primitive number type, that walk
//! costs as much CPU as the frame checksum (figures in `docs/benchmarks.md`).
//! Here such events are encoded and decoded with one copy of the numbers'
//! bytes (on little-endian targets; elsewhere one number at a time).
//!
//! The bytes are exactly bincode's (the tests compare both ways, for every
//! supported type), so the choice never shows in the log: a frame written by
//! either path is read by either. Anything this module does not recognise,
//! including malformed payloads, is left to serde, which produces the
//! canonical error.

use std::any::{Any, TypeId};

use serde::{de::DeserializeOwned, Serialize};
use timely::dataflow::operators::capture::Event;
use timely::progress::Stamp;

use crate::capture::wire::bincode::{decode_bincode_from, encode_bincode};
use crate::error::FrameError;

/// bincode's variant index of `Event::Messages`.
const MESSAGES: u32 = 1;

/// A number type whose bincode encoding is its little-endian bytes.
///
/// # Safety
/// Implemented only for primitive numbers: every bit pattern of `SIZE`
/// bytes is a valid value, and there is no padding.
unsafe trait Plain: Copy + 'static {
    const SIZE: usize;
    fn from_le(bytes: &[u8]) -> Self;
    fn to_le(self, out: &mut Vec<u8>);
}

macro_rules! plain {
    ($($number:ty),*) => {
        // SAFETY: primitive numbers (see the trait).
        $(unsafe impl Plain for $number {
            const SIZE: usize = std::mem::size_of::<$number>();
            #[inline(always)]
            fn from_le(bytes: &[u8]) -> Self {
                let mut le = [0u8; std::mem::size_of::<$number>()];
                le.copy_from_slice(bytes);
                <$number>::from_le_bytes(le)
            }
            #[inline(always)]
            fn to_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        })*

        /// Calls `$body` with the number type `P` such that `C` is `Vec<P>`.
        macro_rules! with_plain_vec {
            ($container:ty, |$p:ident| $body:expr) => {{
                let id = TypeId::of::<$container>();
                let mut result = None;
                $(if id == TypeId::of::<Vec<$number>>() {
                    type $p = $number;
                    result = Some($body);
                })*
                result
            }};
        }
    };
}

plain!(u8, i8, u16, i16, u32, i32, u64, i64, u128, i128, f32, f64);

/// Encodes `event` as bincode would, if it carries a `Vec` of plain
/// numbers; `None` leaves it to serde.
pub(super) fn encode<T: Serialize + 'static, C: 'static>(
    event: &Event<T, C>,
    out: &mut Vec<u8>,
) -> Option<Result<(), FrameError>> {
    let Event::Messages(stamp, container) = event else { return None };
    with_plain_vec!(C, |P| {
        let numbers = (container as &dyn Any).downcast_ref::<Vec<P>>().expect("C is Vec<P>");
        encode_numbers(stamp, numbers, out)
    })
}

fn encode_numbers<T: Serialize, P: Plain>(
    stamp: &Stamp<T>,
    numbers: &[P],
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    out.extend_from_slice(&MESSAGES.to_le_bytes());
    encode_bincode(stamp, out)?;
    out.reserve(8 + numbers.len() * P::SIZE);
    out.extend_from_slice(&(numbers.len() as u64).to_le_bytes());
    if cfg!(target_endian = "little") {
        // SAFETY: `P` is a primitive number (see `Plain`): its in-memory
        // bytes are initialised, and on a little-endian target they are
        // its little-endian encoding. The view covers exactly `numbers`.
        let bytes =
            unsafe { std::slice::from_raw_parts(numbers.as_ptr().cast::<u8>(), std::mem::size_of_val(numbers)) };
        out.extend_from_slice(bytes);
    } else {
        for &number in numbers {
            number.to_le(out);
        }
    }
    Ok(())
}

/// `bytes` (a multiple of `P::SIZE` long) read as little-endian numbers.
fn read_numbers<P: Plain>(bytes: &[u8]) -> Vec<P> {
    let len = bytes.len() / P::SIZE;
    if !cfg!(target_endian = "little") {
        return bytes.chunks_exact(P::SIZE).map(P::from_le).collect();
    }
    let mut numbers: Vec<P> = Vec::with_capacity(len);
    // SAFETY: the allocation holds `len` values of `P`, `len * P::SIZE ==
    // bytes.len()` bytes, which the copy fills; any bytes are a valid `P`
    // (see `Plain`), and on a little-endian target they read as bincode
    // wrote them. The source and the new allocation do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), numbers.as_mut_ptr().cast::<u8>(), len * P::SIZE);
        numbers.set_len(len);
    }
    numbers
}

/// Decodes `payload` if it is a `Messages` event whose container is a `Vec`
/// of plain numbers and is well formed; `None` leaves it to serde.
pub(super) fn decode<T: DeserializeOwned + Ord + 'static, C: 'static>(payload: &[u8]) -> Option<Event<T, C>> {
    let tag = payload.get(..4)?;
    if u32::from_le_bytes(tag.try_into().ok()?) != MESSAGES {
        return None;
    }
    with_plain_vec!(C, |P| decode_numbers::<T, P>(&payload[4..]).and_then(|(stamp, numbers)| {
        let mut numbers = Some(numbers);
        let container = (&mut numbers as &mut dyn Any).downcast_mut::<Option<C>>()?.take()?;
        Some(Event::Messages(stamp, container))
    }))
    .flatten()
}

fn decode_numbers<T: DeserializeOwned + Ord, P: Plain>(body: &[u8]) -> Option<(Stamp<T>, Vec<P>)> {
    let mut rest = body;
    let stamp: Stamp<T> = decode_bincode_from(&mut rest).ok()?;
    let (len, bytes) = rest.split_first_chunk::<8>()?;
    let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
    if len.checked_mul(P::SIZE)? != bytes.len() {
        return None;
    }
    Some((stamp, read_numbers(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::wire::bincode::{decode_bincode, encode_bincode};
    use proptest::prelude::*;

    fn through_serde<T: Serialize, C: Serialize>(event: &Event<T, C>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_bincode(event, &mut out).unwrap();
        out
    }

    fn same_bytes_both_ways<C>(event: Event<u64, C>)
    where
        C: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + 'static,
    {
        let serde_bytes = through_serde(&event);
        let mut bulk_bytes = Vec::new();
        encode(&event, &mut bulk_bytes).expect("a plain container").unwrap();
        assert_eq!(bulk_bytes, serde_bytes);
        let decoded: Event<u64, C> = decode(&serde_bytes).expect("a plain container");
        assert_eq!(decoded, event);
    }

    proptest! {
        #[test]
        fn every_plain_type_matches_serde(
            stamp in proptest::collection::vec(any::<u64>(), 0..3),
            u in proptest::collection::vec(any::<u64>(), 0..300),
            i in proptest::collection::vec(any::<i32>(), 0..300),
            b in proptest::collection::vec(any::<u8>(), 0..300),
            f in proptest::collection::vec(any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()), 0..50),
        ) {
            let stamp: Stamp<u64> = stamp.into_iter().collect();
            same_bytes_both_ways(Event::Messages(stamp.clone(), u));
            same_bytes_both_ways(Event::Messages(stamp.clone(), i));
            same_bytes_both_ways(Event::Messages(stamp.clone(), b));
            same_bytes_both_ways(Event::Messages(stamp, f));
        }

        #[test]
        fn damaged_payloads_are_left_to_serde(cut in 0usize..64, flip in 0usize..64) {
            let event: Event<u64, Vec<u64>> = Event::Messages(Stamp::from_elem(7), (0..5).collect());
            let mut bytes = through_serde(&event);
            if flip < bytes.len() {
                bytes[flip] ^= 0x80;
            }
            bytes.truncate(cut.min(bytes.len()));
            // Whatever serde makes of the bytes, the bulk path agrees or declines.
            let serde: Result<Event<u64, Vec<u64>>, _> = decode_bincode(&bytes);
            if let Some(bulk) = decode::<u64, Vec<u64>>(&bytes) {
                prop_assert_eq!(Some(bulk), serde.ok());
            }
        }
    }

    #[test]
    fn other_containers_and_progress_are_left_to_serde() {
        let tuples: Event<u64, Vec<(u64, i64)>> = Event::Messages(Stamp::from_elem(1), vec![(1, 2)]);
        assert!(encode(&tuples, &mut Vec::new()).is_none());
        assert!(decode::<u64, Vec<(u64, i64)>>(&through_serde(&tuples)).is_none());
        let progress: Event<u64, Vec<u64>> = Event::Progress(vec![(0, 1)]);
        assert!(encode(&progress, &mut Vec::new()).is_none());
        assert!(decode::<u64, Vec<u64>>(&through_serde(&progress)).is_none());
    }

    #[test]
    fn a_length_beyond_the_payload_is_declined() {
        let mut bytes = MESSAGES.to_le_bytes().to_vec();
        bytes.extend_from_slice(&0u64.to_le_bytes()); // empty stamp
        bytes.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        bytes.extend_from_slice(&[0; 16]);
        assert!(decode::<u64, Vec<u64>>(&bytes).is_none());
    }
}
