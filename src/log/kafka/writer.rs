//! Producing to one partition through the shared producer, with every
//! acknowledgement checked.
//!
//! Acknowledgements alone are not proof. A writer is its partition's only
//! writer, so its records hold a contiguous range of offsets: at every
//! check (each flush, and before each commit record of an exactly-once
//! capture) the records sent since the last check must sit right after the
//! records of that check, at contiguous offsets. This turns two silent
//! failures into errors: a broker acknowledging a retried batch it never
//! stored, and a second writer interleaving records into the partition.
//!
//! Most checks are settled by the acknowledged offsets alone. Some are not:
//! a batch that librdkafka retried across a leader change, which the new
//! leader had already stored, comes back as a *duplicate* and librdkafka
//! reports its records delivered with no offset (`rdkafka_request.c`:
//! "Treat as success, however offset and timestamp will be invalid"). Such
//! records are placed by reading them back: the writer keeps a checksum of
//! each record sent since the last check, and the last `n` records the
//! partition holds must be its `n` records, in order. Right after an
//! election the new leader's high watermark can lag what it stored and
//! acknowledged (it advances as followers fetch, and a follower that was
//! stopped stays in the in-sync set for `replica.lag.time.max.ms`), so a
//! window that does not fit yet is asked again until the delivery bound;
//! a window that can never fit (more records after the first acknowledged
//! one than this writer sent) fails at once.
//!
//! A writer's first record (a stream header) is acknowledged before any
//! other is sent. A broker that holds no state yet for the producer on a
//! partition accepts its first batch whatever its sequence number, so when
//! the first batch failed transiently and the next ones overtook it, the
//! broker stored them and answered the first one's retry as a duplicate of
//! what it had never stored: a 3-node cluster under load lost a stream's
//! header so (reported delivered without an offset; the partition held
//! every record but that one). Waiting for the first acknowledgement costs
//! one round trip per writer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::BaseRecord;

use super::producer::{send_record, Deliveries, SharedProducer};
use super::watermarks::watermarks;
use super::KafkaLog;
use crate::error::{Error, Result, TopicPartition};
use crate::log::{PartitionReader, PartitionWriter, WriterHooks};

/// Checksums kept per check window at most (16 MiB); past it a window is
/// placed by counting alone.
const MAX_CHECKSUMS: usize = 1 << 22;
/// How long a writer waits before asking for the partition's end again
/// while placing records.
const PLACE_STEP: Duration = Duration::from_millis(200);

/// Produces to one partition; checks every acknowledgement.
pub struct KafkaWriter {
    id: TopicPartition,
    producer: Arc<SharedProducer>,
    deliveries: Arc<Deliveries>,
    /// For watermark questions and read-backs.
    log: KafkaLog,
    sent: u64,
    /// Records sent since the last check, and a checksum of each
    /// (`None` once there are more than [`MAX_CHECKSUMS`]).
    window: u64,
    checksums: Option<Vec<u32>>,
    /// The offset after the records of the last check.
    checked_end: Option<i64>,
    timeout: Duration,
    delivery_wait: Duration,
    max_record: usize,
}

impl KafkaWriter {
    pub(super) fn new(log: &KafkaLog, topic: &str, partition: u32) -> Result<Self> {
        Ok(KafkaWriter {
            id: TopicPartition::new(topic, partition),
            producer: log.shared_producer()?,
            deliveries: Arc::new(Deliveries::default()),
            log: log.clone(),
            sent: 0,
            window: 0,
            checksums: Some(Vec::new()),
            checked_end: None,
            timeout: log.timeout,
            delivery_wait: log.delivery_wait(),
            max_record: log.max_record(),
        })
    }

    fn check_deliveries(&self) -> Result<()> {
        match self.deliveries.first_error() {
            Some(reason) => Err(Error::Write { at: self.id.clone(), reason }),
            None => Ok(()),
        }
    }

    fn write_error(&self, reason: impl Into<String>) -> Error {
        Error::Write { at: self.id.clone(), reason: reason.into() }
    }

    /// Checks that the records of this window (all acknowledged) sit at
    /// contiguous offsets right after the previous window's (see the
    /// module doc), then starts a new window.
    fn check_offsets(&mut self) -> Result<()> {
        let n = self.window;
        if n == 0 {
            return Ok(());
        }
        let acknowledged = self.deliveries.take_offsets();
        let start = match acknowledged {
            Some((count, min, max))
                if count == n && (max - min + 1) as u64 == n && self.checked_end.is_none_or(|end| end == min) =>
            {
                min
            }
            _ => self.place(acknowledged)?,
        };
        self.checked_end = Some(start + n as i64);
        self.window = 0;
        if let Some(checksums) = self.checksums.as_mut() {
            checksums.clear();
        } else {
            self.checksums = Some(Vec::new());
        }
        Ok(())
    }

    /// Finds where this window's records are stored: the last `n` records
    /// of the partition, checked against the window's checksums. Waits
    /// (up to the delivery bound) while the end is short of them.
    fn place(&self, acknowledged: Option<(u64, i64, i64)>) -> Result<i64> {
        let n = self.window as i64;
        let started = Instant::now();
        let deadline = started + self.delivery_wait;
        let (topic, partition) = (&self.id.topic, self.id.partition as i32);
        let described = match acknowledged {
            Some((count, min, max)) => format!("{count} with an offset, spanning {min}..={max}"),
            None => "none with an offset".to_string(),
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            let (low, end) = watermarks(self.producer.client(), &self.log, topic, partition, left).map_err(|e| {
                self.write_error(format!("cannot read the end offset to place acknowledged records: {e}"))
            })?;
            let mismatch = match fit(n, acknowledged, self.checked_end, low, end) {
                Fit::At(start) => self.first_mismatch(start, end)?,
                Fit::Short => "the partition's end is short of them".to_string(),
                Fit::Never(from) => {
                    let read_back = self.first_mismatch(from, end).unwrap_or_else(|e| e.to_string());
                    return Err(self.write_error(format!(
                        "the broker acknowledged {n} records ({described}) but the partition holds {} records \
                         from offset {from} on: records were duplicated, or another writer shares the partition \
                         ({read_back})",
                        end - from
                    )));
                }
            };
            if mismatch.is_empty() {
                return Ok(end - n);
            }
            if Instant::now() >= deadline {
                return Err(self.write_error(format!(
                    "the broker acknowledged {n} records ({described}) that are not the last {n} records of the \
                     partition (end offset {end}) after {:.1?}: {mismatch}; records were lost, or another writer \
                     shares the partition",
                    started.elapsed()
                )));
            }
            std::thread::sleep(PLACE_STEP);
        }
    }

    /// Reads `start..end` back and compares it with this window's
    /// checksums: an empty string if they match, else what differs.
    /// Without checksums (a window too large to keep them) only the count
    /// is checked, which `place` did.
    fn first_mismatch(&self, start: i64, end: i64) -> Result<String> {
        let Some(checksums) = self.checksums.as_ref() else { return Ok(String::new()) };
        let mut reader = super::KafkaReader::new(&self.log, &self.id.topic, self.id.partition, start.max(0) as u64)?;
        for (next, (index, expected)) in (start..).zip(checksums.iter().enumerate()) {
            if next >= end {
                return Ok(format!("only {index} of {} records read back from offset {start}", checksums.len()));
            }
            let record = reader.poll_stored(self.timeout)?;
            let Some(record) = record else {
                return Ok(format!("only {index} of {} records read back from offset {start}", checksums.len()));
            };
            if record.offset as i64 != next || crc32c::crc32c(record.payload) != *expected {
                return Ok(format!(
                    "offset {} holds a record other than this writer's record {index} of the {} it checks",
                    record.offset,
                    checksums.len()
                ));
            }
        }
        Ok(String::new())
    }

    fn unacknowledged(&self) -> u64 {
        self.sent.saturating_sub(self.deliveries.acked())
    }
}

/// Where a window of `n` records can be, given the partition's `low` and
/// `end` offsets now.
#[derive(Debug, PartialEq, Eq)]
enum Fit {
    /// Its last `n` records, from this offset: to be read back and compared.
    At(i64),
    /// The end is short of them (a high watermark lagging after an
    /// election): ask again.
    Short,
    /// More records than the writer sent are stored from this offset on,
    /// which is past the window's first possible place: the end only
    /// grows, so it can never fit.
    Never(i64),
}

/// A window starts right after the previous one (`checked_end`), when
/// there was one, and covers every offset acknowledged for it
/// (`acknowledged`: count, min, max).
fn fit(n: i64, acknowledged: Option<(u64, i64, i64)>, checked_end: Option<i64>, low: i64, end: i64) -> Fit {
    let start = end - n;
    // The first place the window could start: after the previous window,
    // or at its first acknowledged offset less the records without one.
    let first_possible = match (checked_end, acknowledged) {
        (Some(checked), _) => Some(checked),
        (None, Some((count, min, _))) => Some(min - (n - count as i64)),
        (None, None) => None,
    };
    let last_possible = checked_end.or(acknowledged.map(|(_, min, _)| min));
    if let Some(last) = last_possible {
        if start > last {
            return Fit::Never(first_possible.unwrap_or(last).max(low));
        }
    }
    let short = start < low
        || first_possible.is_some_and(|first| start < first)
        || acknowledged.is_some_and(|(_, _, max)| max >= end);
    if short {
        Fit::Short
    } else {
        Fit::At(start)
    }
}

impl PartitionWriter for KafkaWriter {
    fn partition(&self) -> &TopicPartition {
        &self.id
    }

    fn append(&mut self, record: &[u8]) -> Result<()> {
        if self.sent == 1 {
            // The first record alone, acknowledged before any other is sent
            // (see the module doc).
            self.flush()?;
        }
        let pending = BaseRecord::<(), [u8], _>::with_opaque_to(&self.id.topic, self.deliveries.clone())
            .partition(self.id.partition as i32)
            .payload(record);
        send_record(&self.producer, pending, 2 * self.timeout)
            .map_err(|reason| Error::Write { at: self.id.clone(), reason })?;
        self.sent += 1;
        self.window += 1;
        if let Some(checksums) = self.checksums.as_mut() {
            if checksums.len() < MAX_CHECKSUMS {
                checksums.push(crc32c::crc32c(record));
            } else {
                self.checksums = None;
            }
        }
        if self.sent.is_multiple_of(1024) {
            self.check_deliveries()?;
        }
        Ok(())
    }

    /// Waits (at most the delivery bound, `message.timeout.ms`, plus a
    /// margin) until every record this writer sent has a delivery report — only this writer's records, so a writer
    /// does not wait for the others sharing the producer.
    fn flush(&mut self) -> Result<()> {
        let reported = self.deliveries.wait_reported(self.sent, self.delivery_wait);
        self.check_deliveries()?;
        if !reported || self.unacknowledged() > 0 {
            return Err(Error::Write {
                at: self.id.clone(),
                reason: format!(
                    "{} of {} records still unacknowledged after {:?}",
                    self.unacknowledged(),
                    self.sent,
                    self.delivery_wait
                ),
            });
        }
        self.check_offsets()
    }

    fn publish(&mut self) -> Result<()> {
        self.check_deliveries()
    }

    fn max_record_bytes(&self) -> usize {
        self.max_record
    }
}

impl WriterHooks for KafkaWriter {
    /// Everything [`PartitionWriter::flush`] checks: every record reported,
    /// none failed, at contiguous offsets.
    fn check_stored(&mut self) -> Result<()> {
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::{fit, Fit};

    #[test]
    fn records_acknowledged_without_an_offset_are_placed_at_the_end() {
        // 101 sent, 100 acknowledged at 0..=99, one as a duplicate: the
        // partition's last 101 records, once the end covers them.
        assert_eq!(fit(101, Some((100, 0, 99)), None, 0, 100), Fit::Short);
        assert_eq!(fit(101, Some((100, 0, 99)), None, 0, 101), Fit::At(0));
        // The duplicate was the window's first record: acknowledged 1..=100.
        assert_eq!(fit(101, Some((100, 1, 100)), None, 0, 101), Fit::At(0));
        // After a window ending at 500, none with an offset.
        assert_eq!(fit(10, None, Some(500), 0, 505), Fit::Short);
        assert_eq!(fit(10, None, Some(500), 0, 510), Fit::At(500));
        // Nothing known: the last n records, if there are n.
        assert_eq!(fit(10, None, None, 0, 12), Fit::At(2));
        assert_eq!(fit(10, None, None, 5, 12), Fit::Short);
    }

    #[test]
    fn records_past_the_window_never_fit() {
        // Another writer's record between two windows (offset 1).
        assert_eq!(fit(1, Some((1, 2, 2)), Some(1), 0, 3), Fit::Never(1));
        // Two records stored from the first acknowledged offset for one sent.
        assert_eq!(fit(1, Some((1, 7, 7)), None, 0, 9), Fit::Never(7));
        // A lagging end is short, not never.
        assert_eq!(fit(3, Some((3, 7, 9)), Some(7), 0, 9), Fit::Short);
    }
}
