//! Exactly-once capture: commit points and epochs.
//!
//! An exactly-once stream (its stream header carries the exactly-once flag)
//! interleaves its events with **commit records**. A commit at sequence
//! number `s` says: every event of this session before `s` is stored, and
//! the stream's progress state after them is `state` (the consolidated
//! progress counts, whose frontier `F` is the *committed frontier*). Replay
//! hands timely only what commits cover: the progress up to the newest
//! commit, and every message whose times are all *not beyond* `F` (a message
//! at a time `t >= F` may still be regenerated after a crash, so it waits
//! for a commit whose frontier has passed it). Everything else is held back
//! and, if the capture dies, dropped.
//!
//! A capture resumed after a crash opens a new **epoch**: its first record is
//! an epoch record (a stream header plus an epoch link) naming the commit it
//! continues. The epoch is valid only if that commit is the newest commit of
//! the stream's current epoch before the epoch record; replay then drops the
//! old epoch's uncommitted tail and ignores every later record of the old
//! epoch (a zombie: the old process, still writing). An epoch that names an
//! older commit is void and ignored as a whole, so every replayer — whenever
//! it started reading — agrees on the same sequence; the resuming writer
//! checks its epoch record is valid before it captures anything.
//!
//! The parts: `rules` (which messages a commit covers), `chain` (which
//! records belong to the stream, shared by replay, resume and inspection so
//! they agree), `commit_state` (the producer's side: when to commit, what a
//! resumed capture drops) and `committed` (the replay side). Continuing a
//! stream after a crash opens a producer, so it sits above both, in
//! `capture::worker::resume`. The record payloads are in `wire::commit`;
//! the collective helper is [`crate::capture::worker::capture_exactly_once`].

pub(crate) mod chain;
pub(crate) mod commit_state;
pub(crate) mod committed;
pub(crate) mod rules;

pub use commit_state::CommitOptions;
