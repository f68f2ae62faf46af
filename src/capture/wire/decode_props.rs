//! Decoders never panic: random bytes and mutated valid frames give a value
//! or a typed error.

use proptest::prelude::*;
use timely::dataflow::operators::capture::event::Event;
use timely::progress::Stamp;

use super::codec::{Bincode, EventCodec};
use super::decode_untrusted as decode_everything;
use super::frame::{self, FrameHeader, FrameKind};
use crate::codec_id::CodecId;

fn valid_frame(values: Vec<u64>, time: u64) -> Vec<u8> {
    let event: Event<u64, Vec<u64>> = Event::Messages(Stamp::from_elem(time), values);
    let mut buffer = Vec::new();
    frame::begin_frame(&mut buffer);
    <Bincode as EventCodec<u64, Vec<u64>>>::encode(&event, &mut buffer).unwrap();
    let header = FrameHeader {
        codec: CodecId::Bincode,
        kind: FrameKind::Event,
        session: 1,
        seq: 1,
        is_final: false,
        exactly_once: false,
    };
    frame::finish_frame(&mut buffer, header).unwrap();
    buffer
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn mutated_frames_are_rejected_or_decoded(
        values in proptest::collection::vec(any::<u64>(), 0..64),
        time in any::<u64>(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let original = valid_frame(values, time);
        let mut bytes = original.clone();
        for (at, mask) in flips {
            let len = bytes.len();
            bytes[at % len] ^= mask.max(1);
        }
        decode_everything(&bytes);
        // Two flips of the same byte with the same mask cancel out: that
        // frame is the original, not a mutated one.
        prop_assert!(bytes == original || frame::decode_frame(&bytes).is_err(), "a mutated frame passed its checksum");
    }

    #[test]
    fn truncated_frames_are_rejected(values in proptest::collection::vec(any::<u64>(), 0..64), cut in any::<usize>()) {
        let bytes = valid_frame(values, 3);
        let cut = cut % bytes.len();
        decode_everything(&bytes[..cut]);
        prop_assert!(frame::decode_frame(&bytes[..cut]).is_err());
    }
}

/// Found by `cargo fuzz`: a progress update whose timestamp claims 0x000a_0400_0000_00a3
/// coordinates. timely's `Stamp` reserves the claimed length up front; the
/// reservation is fallible, so the decoder must return an error, not abort.
#[test]
fn huge_claimed_length_is_an_error() {
    let bytes = [0x01, 0, 0, 0, 0, 0, 0xa3, 0, 0, 0, 0x04, 0, 0, 0x0a];
    assert!(<Bincode as EventCodec<u64, Vec<u64>>>::decode(&bytes).is_err());
    decode_everything(&bytes);
}
