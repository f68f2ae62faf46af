//! Keyed state that commits with the output: a restart reads the state at
//! the committed frontier `F` instead of the whole input history.
//!
//! # Why
//!
//! Without declared state, a start rebuilds the operators' state by
//! reading every input partition again from where the pipeline began
//! ([`PipelineConfig::replay_from_start`](super::PipelineConfig::replay_from_start)):
//! restart cost grows with the pipeline's age, and the input must be kept
//! forever. A pipeline that declares its state
//! ([`PipelineConfig::state`](super::PipelineConfig::state)) keeps a
//! *changelog* of it, as Kafka Streams does: a compacted topic
//! `<output>.state.<name>` whose record per key is the key's latest value
//! (a record without value — a tombstone — removes the key).
//!
//! # How
//!
//! - **Written in the commit's transaction.** The operator that owns the
//!   state emits, at each time, the changes it made at that time
//!   ([`TransactionalPipeline::changes`](super::TransactionalPipeline::changes)). They travel to
//!   worker 0's transactional sink like outputs and are written to the
//!   changelog in the same transaction as the outputs and the progress
//!   record: the changes at times before `F` are committed exactly when
//!   the outputs are. Nothing else is durable; no local files.
//! - **The progress record bounds it.** Before it writes the progress
//!   record, the writer waits for the changelog records' delivery reports and
//!   stores, per changelog partition, one past the last offset delivered
//!   ([`ChangelogExtent`](super::ChangelogExtent)), with where the pipeline's
//!   changes begin and the changelog's topic id.
//! - **Restore reads exactly that** ([`restore`]): after fencing, a start
//!   checks each changelog against the last commit — present, same topic id,
//!   same partition count, still reaching the recorded ends — and refuses
//!   otherwise in one line naming topic and partition. Then every worker
//!   reads its share of the changelog partitions with read_committed, from
//!   the recorded start to the recorded end (a timeout is an error, never
//!   "what I got"), keeps the latest value per key, and hands the entries to
//!   the dataflow at time 0, before any input time: the program exchanges
//!   them by key like its input, so each key lands on the worker that owns
//!   it under the *current* worker count.
//! - **Sources seek to the binding.** With state declared, the sources read
//!   from the offsets bound to `F`, not from the start: input below the
//!   binding is no longer read and no longer needs to be retained.
//!
//! - **Or the output is the changelog.** A state whose changes are exactly
//!   the outputs ([`PipelineConfig::state_in_output`](super::PipelineConfig::state_in_output))
//!   is kept in the output topic (compacted, no retention: checked like a
//!   changelog); the progress record stores the output's extent the same
//!   way, and the restore decodes its records with the program's decoder
//!   ([`TransactionalPipeline::restore_with`](super::TransactionalPipeline::restore_with)).
//!
//! A partition of the changelog is chosen by the producer's partitioner
//! from the encoded key, so a key always lands in one partition (compaction
//! keeps its newest value); the partition count is therefore fixed once
//! the changelog holds state.

mod changelog;
mod restore;

pub(super) use changelog::{check_changelogs, refuse_random_partitioner, topic_role};
pub(super) use restore::restore;
pub use restore::RestoreStats;

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;
use timely::dataflow::StreamVec;

/// The changelog topic of state `name` of the pipeline writing `output`.
pub fn changelog_topic(output: &str, name: &str) -> String {
    format!("{output}.state.{name}")
}

/// One encoded change: the state's index among the declared ones, the key,
/// the value (`None`: removed).
pub(super) type Change = (u32, Vec<u8>, Option<Vec<u8>>);

/// The state changes of one declared state, encoded, for
/// [`TransactionalPipeline::sink_with_state`](super::TransactionalPipeline::sink_with_state).
pub struct StateChanges<'scope> {
    /// The state's index among the declared ones.
    pub(super) state: u32,
    pub(super) stream: StreamVec<'scope, u64, Change>,
}

/// The encoding of keys and values in a changelog: bincode with fixed-width
/// integers, refusing trailing bytes (a record that is not exactly one
/// encoded value is corrupt, not a value).
fn codec() -> impl Options {
    bincode::options().with_fixint_encoding().reject_trailing_bytes()
}

/// Encodes a key or value of a state.
pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing into a Vec fails only for types serde cannot express
    // (maps with non-string keys are fine in bincode): none of ours.
    codec().serialize(value).unwrap_or_default()
}

/// Decodes a key or value of a state.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    codec().deserialize(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_read_back_and_garbage_is_refused() {
        let key = encode(&"fox".to_string());
        assert_eq!(decode::<String>(&key).unwrap(), "fox");
        assert_eq!(decode::<u64>(&encode(&7u64)).unwrap(), 7);
        assert!(decode::<String>(b"xyz").is_err());
        assert!(decode::<u64>(&[0u8; 9]).is_err(), "trailing bytes are refused");
        assert_eq!(changelog_topic("counts", "totals"), "counts.state.totals");
    }
}
