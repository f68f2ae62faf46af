//! The crate's one bincode configuration, shared by every payload it writes
//! (events, stream headers, commit and epoch records) so a value encoded
//! anywhere decodes anywhere.

use ::bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

use crate::error::FrameError;

/// bincode 1.x options shared by encoder and decoder: fixed-width integers
/// (as `bincode::serialize`), no trailing bytes, and a read limit so a hostile
/// length prefix cannot make the decoder allocate more than the payload holds.
fn bincode_options(limit: u64) -> impl Options {
    ::bincode::DefaultOptions::new().with_fixint_encoding().with_limit(limit)
}

/// Decodes any serde value from exactly `payload` with the crate's bincode options.
pub(crate) fn decode_bincode<V: DeserializeOwned>(payload: &[u8]) -> Result<V, FrameError> {
    bincode_options(payload.len() as u64).deserialize(payload).map_err(|e| FrameError::Decode(e.to_string()))
}

/// Decodes one serde value from the front of `bytes`, advancing it past
/// what was read.
pub(crate) fn decode_bincode_from<V: DeserializeOwned>(bytes: &mut &[u8]) -> Result<V, FrameError> {
    bincode_options(bytes.len() as u64)
        .allow_trailing_bytes()
        .deserialize_from(bytes)
        .map_err(|e| FrameError::Decode(e.to_string()))
}

/// Encodes any serde value with the crate's bincode options.
pub(super) fn encode_bincode<V: Serialize>(value: &V, out: &mut Vec<u8>) -> Result<(), FrameError> {
    bincode_options(u64::MAX).serialize_into(out, value).map_err(|e| FrameError::Decode(format!("bincode encode: {e}")))
}
