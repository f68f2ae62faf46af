//! Fuzzes every decoder that sees untrusted bytes: the frame header, the
//! stream header, and the bincode event codec for several type shapes.
//! (The abomonation codec is trusted-data-only by design and is not fuzzed.)
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run frame -- -max_total_time=60` in this directory's parent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use timely_kafka::frame::decode_frame;
use timely_kafka::{Bincode, EventCodec, StreamHeader};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_frame(data) {
        let _ = StreamHeader::from_payload(frame.payload);
        let _ = <Bincode as EventCodec<u64, Vec<u64>>>::decode(frame.payload);
    }
    let _ = StreamHeader::from_payload(data);
    let _ = <Bincode as EventCodec<u64, Vec<u64>>>::decode(data);
    let _ = <Bincode as EventCodec<(u64, u32), Vec<(String, i64)>>>::decode(data);
});
