//! What a captured stream is: its header record and where it lives.
//!
//! Every captured partition starts with a [`StreamHeader`] naming the capture
//! session and the types inside, so a replay with the wrong codec or types is
//! refused before any data is decoded, and records of different capture runs
//! are never mixed.

use serde::{Deserialize, Serialize};

use crate::capture::wire::bincode::{decode_bincode, encode_bincode};
use crate::capture::wire::frame::{self, CodecId, FrameHeader, FrameKind};
use crate::error::FrameError;

/// The first record of every captured stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHeader {
    /// Random id of the capture session that wrote the stream.
    pub session: u64,
    /// Index of the capturing worker.
    pub worker: u32,
    /// Number of capturing workers.
    pub peers: u32,
    /// Codec of the event frames (as `CodecId as u8`).
    pub codec: u8,
    /// `std::any::type_name` of the timestamp type.
    pub time_type: String,
    /// `std::any::type_name` of the container type.
    pub container_type: String,
    /// Frame format version.
    pub format_version: u8,
    /// Wall-clock start of the capture, milliseconds since the Unix epoch.
    pub created_at_unix_ms: u64,
}

impl StreamHeader {
    /// A header for a new session of a stream of `Event<T, C>`.
    pub fn new<T, C>(codec: CodecId, worker: u32, peers: u32) -> Self {
        StreamHeader {
            session: new_session_id(),
            worker,
            peers,
            codec: codec as u8,
            time_type: std::any::type_name::<T>().to_string(),
            container_type: std::any::type_name::<C>().to_string(),
            format_version: frame::FORMAT_VERSION,
            created_at_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }

    /// The stream header `frame` holds: `None` if the frame is of another
    /// kind, an error if its payload is not a stream header. The one
    /// "is the first record a stream header" check (resume, replay, the
    /// stream count).
    pub(crate) fn of_frame(frame: &frame::Frame<'_>) -> Option<Result<Self, FrameError>> {
        (frame.header.kind == FrameKind::StreamHeader).then(|| StreamHeader::from_payload(frame.payload))
    }

    /// The header as a complete frame (sequence number 0).
    pub fn to_frame(&self) -> Result<Vec<u8>, FrameError> {
        self.to_frame_with(false)
    }

    /// The header as a complete frame, flagged exactly-once or not.
    pub fn to_frame_with(&self, exactly_once: bool) -> Result<Vec<u8>, FrameError> {
        let mut payload = Vec::new();
        encode_bincode(self, &mut payload)?;
        let header = FrameHeader {
            codec: CodecId::None,
            kind: FrameKind::StreamHeader,
            session: self.session,
            seq: 0,
            is_final: false,
            exactly_once,
        };
        frame::encode_frame(header, &payload)
    }

    /// Decodes a header from a stream-header frame's payload.
    pub fn from_payload(payload: &[u8]) -> Result<Self, FrameError> {
        decode_bincode(payload)
    }

    /// Checks that events of `Event<T, C>` encoded with `codec` can be read from this stream.
    pub fn check_compatible<T, C>(&self, codec: CodecId) -> Result<(), String> {
        self.check_codec(codec)?;
        let (time, container) = (std::any::type_name::<T>(), std::any::type_name::<C>());
        if self.time_type != time || self.container_type != container {
            return Err(format!(
                "stream holds Event<{}, {}> but replay expects Event<{time}, {container}>; if both name the same \
                 data (e.g. one struct defined in two crates), skip this check: EventConsumer::skip_type_check or \
                 ReplayOptions::skip_type_check",
                self.time_type, self.container_type
            ));
        }
        Ok(())
    }

    /// Checks only that the stream's events were encoded with `codec`.
    pub fn check_codec(&self, codec: CodecId) -> Result<(), String> {
        if self.codec != codec as u8 {
            let found = CodecId::from_byte(self.codec).map(CodecId::name).unwrap_or("unknown");
            return Err(format!("stream was captured with codec '{found}' but replay expects '{}'", codec.name()));
        }
        Ok(())
    }
}

fn new_session_id() -> u64 {
    // Never 0, so 0 can mean "no session" in diagnostics.
    rand::random::<u64>().max(1)
}

/// How captured streams map onto topics and partitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StreamLayout {
    /// One topic, one partition per capturing worker (partition = worker index).
    #[default]
    Partitioned,
    /// The original kafkaesque layout: topic `NAME-i` (one partition) per worker.
    TopicPerWorker,
}

impl StreamLayout {
    /// The topic and partition of stream `index` of the capture named `name`.
    pub fn locate(self, name: &str, index: u32) -> (String, u32) {
        match self {
            StreamLayout::Partitioned => (name.to_string(), index),
            StreamLayout::TopicPerWorker => (format!("{name}-{index}"), 0),
        }
    }

    /// The streams replay worker `worker` of `workers` takes among `streams`:
    /// every stream `p` with `p % workers == worker`.
    pub fn assigned(streams: u32, worker: usize, workers: usize) -> impl Iterator<Item = u32> {
        (0..streams).filter(move |p| *p as usize % workers == worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_checks() {
        let header = StreamHeader::new::<u64, Vec<u64>>(CodecId::Bincode, 1, 4);
        let frame = header.to_frame().unwrap();
        let decoded = frame::decode_frame(&frame).unwrap();
        assert_eq!(decoded.header.kind, FrameKind::StreamHeader);
        let back = StreamHeader::from_payload(decoded.payload).unwrap();
        assert_eq!(back, header);
        assert!(back.check_compatible::<u64, Vec<u64>>(CodecId::Bincode).is_ok());
        let err = back.check_compatible::<u64, Vec<String>>(CodecId::Bincode).unwrap_err();
        assert!(err.contains("replay expects"), "{err}");
        let err = back.check_compatible::<u64, Vec<u64>>(CodecId::Abomonation).unwrap_err();
        assert!(err.contains("codec 'bincode'"), "{err}");
    }

    #[test]
    fn assignment_covers_every_stream_once() {
        for workers in 1..6 {
            let mut seen: Vec<u32> = (0..workers).flat_map(|w| StreamLayout::assigned(7, w, workers)).collect();
            seen.sort();
            assert_eq!(seen, (0..7).collect::<Vec<_>>());
        }
    }
}
