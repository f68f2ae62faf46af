//! The on-log format, as bytes: frames, chunks, stream headers, commit and
//! epoch payloads, and the codecs of timely events.
//!
//! Nothing here does I/O or builds a timely operator. That keeps one
//! definition of every byte the crate writes, shared by the producer, the
//! replay checks, the inspector and the frame fuzzer, and it lets the format
//! be tested and fuzzed on its own. Each layout is written and parsed in
//! exactly one file: a second copy would be a second place to get wrong.

mod bincode;
pub(crate) mod chunks;
pub(crate) mod codec;
pub(crate) mod commit;
pub(crate) mod frame;
mod plain;
pub(crate) mod stream;

pub(crate) use self::bincode::decode_bincode;

#[cfg(test)]
mod decode_props;

/// Runs every decoder that sees untrusted bytes on `bytes`: the frame
/// header, the stream header and the bincode codec for several type shapes
/// (the frame fuzzer and the property tests call it; it must never panic).
#[cfg(any(test, fuzzing))]
pub(crate) fn decode_untrusted(bytes: &[u8]) {
    use self::codec::{Bincode, EventCodec};
    if let Ok(frame) = frame::decode_frame(bytes) {
        let _ = <Bincode as EventCodec<u64, Vec<u64>>>::decode(frame.payload);
        let _ = stream::StreamHeader::from_payload(frame.payload);
    }
    // The payload decoders must also survive bytes that skipped the frame checks.
    let _ = <Bincode as EventCodec<u64, Vec<u64>>>::decode(bytes);
    let _ = <Bincode as EventCodec<u64, Vec<String>>>::decode(bytes);
    let _ = <Bincode as EventCodec<(u64, u32), Vec<(u64, String)>>>::decode(bytes);
    let _ = <Bincode as EventCodec<(u64, u32), Vec<(String, i64)>>>::decode(bytes);
    let _ = stream::StreamHeader::from_payload(bytes);
}
