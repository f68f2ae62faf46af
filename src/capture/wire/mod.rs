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
pub mod frame;
mod plain;
pub(crate) mod stream;

pub(crate) use self::bincode::decode_bincode;
