//! Fuzzes every decoder that sees untrusted bytes: the frame header, the
//! stream header, and the bincode event codec for several type shapes.
//! (The abomonation codec is trusted-data-only by design and is not fuzzed.)
//!
//! `.ci/run` builds and runs it for 30 s with plain cargo and stable rustc
//! (the coverage flags cargo-fuzz passes, no sanitizer). With cargo-fuzz
//! and AddressSanitizer, run in this directory's parent:
//!
//! ```sh
//! ASAN_OPTIONS=allocator_may_return_null=1 RUSTC_BOOTSTRAP=1 \
//!   cargo fuzz run frame -- -max_total_time=60 -malloc_limit_mb=32768
//! ```
//!
//! The allocation settings match a release build: timely's `Stamp` reserves a
//! sequence's claimed length up front (fallibly), so a crafted length asks for
//! a huge allocation that fails into a decode error, or reserves untouched
//! virtual memory until the decoder runs out of bytes. (Only crafted frames get
//! that far: the CRC rejects corrupted ones first.)
#![no_main]

use libfuzzer_sys::fuzz_target;

// The decoders themselves are listed in `timely_kafka::fuzz_decoders`
// (compiled with `--cfg fuzzing` only), one list shared with the
// property tests of src/capture/wire/decode_props.rs.
fuzz_target!(|data: &[u8]| timely_kafka::fuzz_decoders(data));
