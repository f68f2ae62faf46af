//! Reading one partition from an explicit offset.
//!
//! Each reader is a librdkafka consumer of its own, assigned one partition,
//! so a reader can seek (re-assign) without disturbing any other. The
//! alternatives were measured with plain librdkafka on tansu
//! (`benches/raw_kafka`, three layouts): one client per partition, one per
//! replay thread, and one client with a queue split off per partition
//! (`split_partition_queue`). Which was fastest depended on the run (800 MB,
//! 3 threads: 931 / 692 / 474 MB/s; 80 MB, medians of 3: 397 / 361 / 438);
//! none changes the replay much, whose own CPU (decoding, timely) on a small
//! machine is what bounds it. The prefetch of each client is bounded
//! (`queued.max.messages.kbytes`, fetch sizes in `config.rs`), so memory grows
//! with the partitions replayed, 2 MiB of prefetch each by default.
//!
//! Where a partition ends is not taken from ListOffsets alone: some brokers
//! (tansu) report a `latest` offset short of the last record after batched
//! produces, while their fetch responses carry the right high watermark. The
//! end is the largest of ListOffsets, the high watermark of the fetch
//! responses (librdkafka caches it per partition), and the records seen.
//!
//! Positioning is checked too. tansu serves a fetch that starts inside a
//! record batch wrongly: from the next batch on (records skipped) or, in the
//! last batch, not at all. So after a seek to X the first record must be the
//! one at X: records below X are dropped, and if the broker skips past X, or
//! sends nothing while its high watermark says X is stored, the reader
//! fetches again from a lower position it can trust (the offset ListOffsets
//! reported last, which tansu reports at a batch start, then the partition's
//! first offset) and drops what comes before X.

use std::ffi::CString;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::retry::TRY_BOUND;
use super::watermarks::watermarks;
use super::{KafkaLog, QuickClose};
use crate::error::{undecodable, Error, Result, TopicPartition};
use crate::log::{PartitionReader, ReaderHooks, Record};

/// Reads one partition from an explicit offset.
pub struct KafkaReader {
    id: TopicPartition,
    /// The message last returned, whose payload the returned record borrows
    /// (no copy).
    last: Option<HeldMessage>,
    consumer: Arc<QuickClose>,
    /// For watermark questions the consumer cannot answer (`watermarks.rs`).
    log: KafkaLog,
    timeout: Duration,
    /// Offset to assign the partition at before the next poll.
    start_at: Option<u64>,
    /// Offset of the next record this reader returns (after the last one).
    next_offset: u64,
    /// One past the highest offset this reader has returned.
    seen_end: u64,
    /// After a seek: the offset the next record must have, where the
    /// partition is assigned now, and since when.
    target: Option<(u64, u64, Instant)>,
    /// The end ListOffsets reported last.
    listed_end: Option<u64>,
    /// Since when polls have returned nothing, and when the reader last
    /// asked whether that is a stall (see [`STALL_AFTER`]).
    silent_since: Option<Instant>,
    stall_checked: Option<Instant>,
}

/// A fetched message kept past the borrow of its client: librdkafka frees a
/// message through the client it came from, so the message holds that
/// client alive itself, and is dropped before its handle on it, whatever
/// the order of the fields of whoever holds it.
struct HeldMessage {
    message: ManuallyDrop<BorrowedMessage<'static>>,
    _client: Arc<QuickClose>,
}

impl HeldMessage {
    fn new(message: BorrowedMessage<'_>, client: &Arc<QuickClose>) -> Self {
        // SAFETY: the lifetime only ties the message to its client, and
        // `_client` keeps that client alive until `drop` below has dropped
        // the message.
        let message = unsafe { std::mem::transmute::<BorrowedMessage<'_>, BorrowedMessage<'static>>(message) };
        HeldMessage { message: ManuallyDrop::new(message), _client: client.clone() }
    }
}

impl Drop for HeldMessage {
    fn drop(&mut self) {
        // SAFETY: dropped once, here; `_client` is dropped after this.
        unsafe { ManuallyDrop::drop(&mut self.message) }
    }
}

/// How long a fetch from a sought position may return nothing while the
/// broker's high watermark says records are there, before the reader
/// fetches again from a lower position.
const STUCK_AFTER: Duration = Duration::from_millis(200);

/// How long a partition may stay silent while the broker says records are
/// stored past the reader's position, before the reader assigns it again.
/// A replay following a capture through a rolling restart stopped
/// receiving one partition's records after a leader change, for minutes,
/// while the capture went on writing to it; assigning the partition again
/// restarts its fetcher at the current leader.
const STALL_AFTER: Duration = Duration::from_secs(10);

impl KafkaReader {
    pub(super) fn new(log: &KafkaLog, topic: &str, partition: u32, offset: u64) -> Result<Self> {
        let consumer = Arc::new(log.consumer()?);
        Ok(KafkaReader {
            id: TopicPartition::new(topic, partition),
            last: None,
            consumer,
            log: log.clone(),
            timeout: log.timeout,
            start_at: Some(offset),
            next_offset: offset,
            seen_end: 0,
            target: None,
            listed_end: None,
            silent_since: None,
            stall_checked: None,
        })
    }

    /// The high watermark of the latest fetch response for this partition,
    /// as librdkafka cached it; `None` before any fetch response.
    fn fetched_end(&self) -> Option<u64> {
        let topic = CString::new(self.id.topic.as_str()).ok()?;
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the client pointer is valid while `self.consumer` lives;
        // the topic is a NUL-terminated string and the outputs are locals.
        let error = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                self.id.partition as i32,
                &mut low,
                &mut high,
            )
        };
        (error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
            .then_some(high as u64)
    }

    /// Fetches once from `from` to learn the high watermark the broker's
    /// fetch response carries; the reader resumes where it was afterwards.
    fn probe_end(&mut self, from: u64) -> Result<Option<u64>> {
        let resume = self.start_at.unwrap_or(self.next_offset);
        self.start_at = Some(from);
        let deadline = Instant::now() + self.timeout;
        let mut end = None;
        while end.is_none() && Instant::now() < deadline {
            match self.poll(Duration::from_millis(10)) {
                Ok(Some(record)) => {
                    let after = record.offset + 1;
                    end = Some(self.fetched_end().unwrap_or(after).max(after));
                }
                Ok(None) => end = self.fetched_end(),
                Err(error) => {
                    self.start_at = Some(resume);
                    return Err(error);
                }
            }
        }
        self.start_at = Some(resume);
        self.next_offset = resume;
        Ok(end)
    }

    /// Assigns the partition at the pending start offset. A new reader's
    /// start is deferred to its first poll or seek, so a reader that seeks
    /// first never fetches from its old position.
    fn assign_pending(&mut self) -> Result<()> {
        let Some(offset) = self.start_at.take() else { return Ok(()) };
        // Past what ListOffsets reported, start at its last offset: a broker
        // that under-reports (tansu) does so by a batch it cannot serve from
        // the middle, and starting one record early costs one record.
        let from = match self.listed_end {
            Some(listed) if listed > 0 && offset >= listed => listed - 1,
            _ => offset,
        };
        self.target = Some((offset, from, Instant::now()));
        self.assign_at(from)
    }

    fn assign_at(&self, offset: u64) -> Result<()> {
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&self.id.topic, self.id.partition as i32, Offset::Offset(offset as i64))
            .map_err(|e| Error::kafka_from(&self.id, &e))?;
        self.consumer
            .assign(&assignment)
            .map_err(|e| Error::kafka_from(format!("{}: assign at offset {offset}", self.id), &e))
    }
}

impl KafkaReader {
    /// The broker did not serve the sought offset (see the module doc):
    /// assigns the partition again at a lower position to read up from.
    /// `false` if there is none left to try.
    fn fetch_from_lower(&mut self) -> Result<bool> {
        let Some((target, assigned, _)) = self.target else { return Ok(false) };
        let listed = self.listed_end.map(|end| end.saturating_sub(1)).filter(|&o| o < assigned);
        let from = match listed {
            Some(offset) => offset,
            None => match self.lowest_stored_now()? {
                Some(first) if first < assigned => first,
                _ => return Ok(false),
            },
        };
        self.target = Some((target, from, Instant::now()));
        self.assign_at(from)?;
        Ok(true)
    }

    /// The partition's first offset, asked inside a poll: bounded by one
    /// retry step, and `None` when the cluster is in motion (a leader
    /// moving): the poll returns nothing and the next one asks again, so a
    /// replay waits it out within its idle timeout instead of failing.
    fn lowest_stored_now(&mut self) -> Result<Option<u64>> {
        match watermarks(self.consumer.client(), &self.log, &self.id.topic, self.id.partition as i32, 2 * TRY_BOUND) {
            Ok((low, _)) => Ok(Some(low.max(0) as u64)),
            Err(retried) if retried.ran_out() => Ok(None),
            Err(retried) => Err(Error::kafka_from(format!("{}: watermarks", self.id), &retried)),
        }
    }

    /// Nothing arrived: assigns the partition again at the reader's
    /// position if it has been silent for [`STALL_AFTER`] while the broker
    /// reports records past it (asked at most every half of that).
    fn revive_if_stalled(&mut self) -> Result<()> {
        if self.target.is_some() || self.start_at.is_some() {
            return Ok(());
        }
        let now = Instant::now();
        let since = *self.silent_since.get_or_insert(now);
        let checked_lately = self.stall_checked.is_some_and(|at| now.duration_since(at) < STALL_AFTER / 2);
        if now.duration_since(since) < STALL_AFTER || checked_lately {
            return Ok(());
        }
        self.stall_checked = Some(now);
        let asked = watermarks(self.consumer.client(), &self.log, &self.id.topic, self.id.partition as i32, TRY_BOUND);
        if let Ok((_, high)) = asked {
            if high.max(0) as u64 > self.next_offset {
                self.silent_since = Some(now);
                self.assign_at(self.next_offset)?;
            }
        }
        Ok(())
    }

    /// Nothing arrived: whether the fetch from the sought offset is stuck
    /// although the broker's high watermark says that offset is stored.
    fn stuck(&self) -> bool {
        match self.target {
            Some((target, _, since)) => {
                since.elapsed() >= STUCK_AFTER && self.fetched_end().is_some_and(|end| end > target)
            }
            None => false,
        }
    }
}

/// `wait` rounded up to whole milliseconds. librdkafka waits in whole
/// milliseconds and rust-rdkafka truncates: a wait of 0.4 ms became a
/// non-blocking poll repeated until the 0.4 ms had passed, and such spins
/// were most of a replay's CPU (measured: 0.8 CPU-s polling 403 MB,
/// against 0.03 for a plain consumer).
fn whole_millis(wait: Duration) -> Duration {
    Duration::from_millis(wait.as_micros().div_ceil(1000) as u64)
}

impl KafkaReader {
    /// The next record within `timeout`; `stop_at_end`: return `None` at
    /// the end-of-partition event instead of waiting on for appends.
    fn read(&mut self, timeout: Duration, stop_at_end: bool) -> Result<Option<Record<'_>>> {
        self.last = None;

        self.assign_pending()?;
        let deadline = if timeout.is_zero() { None } else { Some(Instant::now() + timeout) };
        loop {
            let remaining = deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(Instant::now()));
            // After a seek, wait in slices so a stuck fetch is noticed.
            let slice = if self.target.is_some() { remaining.min(STUCK_AFTER / 4) } else { remaining };
            match self.consumer.poll(whole_millis(slice)) {
                None => {
                    if self.stuck() && self.fetch_from_lower()? {
                        continue;
                    }
                    if deadline.is_some_and(|d| Instant::now() < d) {
                        continue;
                    }
                    self.revive_if_stalled()?;
                    return Ok(None);
                }
                Some(Ok(message)) => {
                    let offset = message.offset() as u64;
                    if self.target.is_some_and(|(target, _, _)| offset < target) {
                        continue; // reading up from a lower position
                    }
                    let message = HeldMessage::new(message, &self.consumer);
                    if let Some((target, _, _)) = self.target {
                        if offset > target && self.fetch_from_lower()? {
                            continue;
                        }
                        // At the target, or nothing lower to try: delivered,
                        // and the stream protocol reports any gap.
                        self.target = None;
                    }
                    self.next_offset = offset + 1;
                    self.seen_end = self.seen_end.max(offset + 1);
                    self.silent_since = None;
                    let payload = self.last.insert(message).message.payload().unwrap_or_default();
                    return Ok(Some(Record { offset, payload }));
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    // The end of what the last fetch saw: `poll` waits on
                    // for appends until its deadline.
                    if !stop_at_end && deadline.is_some_and(|d| Instant::now() < d) {
                        continue;
                    }
                    self.revive_if_stalled()?;
                    return Ok(None);
                }
                Some(Err(KafkaError::MessageConsumption(
                    RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset,
                ))) => {
                    let first = self
                        .consumer
                        .fetch_watermarks(&self.id.topic, self.id.partition as i32, self.timeout)
                        .map(|(low, _)| format!("first available offset {low}"))
                        .unwrap_or_else(|e| format!("watermarks unavailable: {e}"));
                    return Err(Error::Protocol {
                        at: self.id.clone(),
                        offset: 0,
                        reason: format!(
                            "stream start is gone: the requested offset is no longer stored (deleted by retention?); {first}"
                        ),
                    });
                }
                Some(Err(KafkaError::MessageConsumption(
                    code @ (RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::TopicAuthorizationFailed),
                ))) => {
                    return Err(Error::kafka_code(format!("{}: {code}", self.id), code));
                }
                Some(Err(KafkaError::MessageConsumption(code) | KafkaError::MessageConsumptionFatal(code)))
                    if undecodable(code) =>
                {
                    return Err(Error::kafka_code(
                        format!("{} at offset {}: records cannot be decoded: {code}", self.id, self.next_offset),
                        code,
                    ));
                }
                // Transient: librdkafka reconnects and retries by itself; the
                // replay's idle timeout bounds how long we keep waiting.
                Some(Err(_)) => {
                    if deadline.is_none_or(|d| Instant::now() >= d) {
                        self.revive_if_stalled()?;
                        return Ok(None);
                    }
                }
            }
        }
    }
}

impl PartitionReader for KafkaReader {
    fn partition(&self) -> &TopicPartition {
        &self.id
    }

    fn poll(&mut self, timeout: Duration) -> Result<Option<Record<'_>>> {
        self.read(timeout, false)
    }

    /// Like `poll`, but the end of what is stored (librdkafka's
    /// end-of-partition event) ends the wait at once.
    fn poll_stored(&mut self, timeout: Duration) -> Result<Option<Record<'_>>> {
        self.read(timeout, true)
    }

    fn first_available_offset(&mut self) -> Result<Option<u64>> {
        let (low, _) =
            watermarks(self.consumer.client(), &self.log, &self.id.topic, self.id.partition as i32, self.timeout)
                .map_err(|e| Error::kafka_from(format!("{}: watermarks", self.id), &e))?;
        Ok(Some(low.max(0) as u64))
    }

    /// The largest of what ListOffsets reports, what fetch responses
    /// reported (a fetch is made for it if this reader has not fetched yet),
    /// and one past the last record read.
    fn end_offset(&mut self) -> Result<u64> {
        let listed = self.listed_end_offset()?;
        let fetched = match self.fetched_end() {
            Some(end) => Some(end),
            None => self.probe_end(listed)?,
        };
        Ok(listed.max(fetched.unwrap_or(0)).max(self.seen_end))
    }

    /// Assigns the partition at `offset` at once, so librdkafka starts
    /// fetching while the caller does other work (a replay opens every
    /// partition, then builds its dataflow).
    fn seek(&mut self, offset: u64) -> Result<()> {
        self.start_at = Some(offset);
        self.next_offset = offset;
        self.assign_pending()
    }
}

impl ReaderHooks for KafkaReader {
    fn reported_end_offset(&mut self) -> Result<Option<u64>> {
        self.listed_end_offset().map(Some)
    }
    fn cached_end_offset(&mut self) -> Option<u64> {
        self.fetched_end()
    }
}

impl KafkaReader {
    /// ListOffsets' answer, which may be short (see the module doc).
    fn listed_end_offset(&mut self) -> Result<u64> {
        let (_, high) =
            watermarks(self.consumer.client(), &self.log, &self.id.topic, self.id.partition as i32, self.timeout)
                .map_err(|e| Error::kafka_from(format!("{}: watermarks", self.id), &e))?;
        let listed = high.max(0) as u64;
        self.listed_end = Some(listed);
        Ok(listed)
    }
}
