//! The exactly-once path of `next`: from an exactly-once stream's header
//! on, only committed events come out ([`CommittedReplay`]).
//!
//! A committed replay may read far ahead of what it delivers (an
//! uncommitted tail), so it reads a bounded number of records per call and
//! yields to timely in between.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use timely::container::Accountable;
use timely::dataflow::operators::capture::event::Event;
use timely::progress::Timestamp;

use super::EventConsumer;
use crate::capture::exactly_once::committed::{CommittedReplay, Next, WINDOW_BYTES};
use crate::capture::wire::codec::EventCodec;
use crate::log::PartitionReader;

/// Records an exactly-once replay may read per call before it yields to
/// timely, so a long uncommitted tail does not hold the worker.
const RECORDS_PER_CALL: usize = 4096;

impl<T: Timestamp, C: Accountable + Clone, R: PartitionReader, K: EventCodec<T, C>> EventConsumer<T, C, R, K> {
    /// From the stream header of an exactly-once stream (`session`, at
    /// `offset`) on, only committed events come out ([`CommittedReplay`]).
    pub(super) fn start_committed(&mut self, session: u64, offset: u64) {
        let id = self.protocol.id.clone();
        // Default: keep uncommitted records in memory only where re-reading
        // them would cost a refetch.
        let cheap = self.reader.rereads_are_cheap();
        let window = self.window_bytes.unwrap_or(if cheap { 0 } else { WINDOW_BYTES });
        self.committed = Some(CommittedReplay::new(id, session, offset, window));
    }

    /// `next` for an exactly-once stream: only committed events come out.
    pub(super) fn next_committed(&mut self) -> Option<Cow<'_, Event<T, C>>> {
        let status = self.status.clone();
        // (one past the largest offset read, bytes read) for the metrics.
        let seen = std::cell::Cell::new((0u64, 0u64));
        let mut read = |offset: u64, bytes: usize| {
            let shared = status.counters();
            shared.frames.fetch_add(1, Ordering::Relaxed);
            shared.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            let (end, total) = seen.get();
            seen.set((end.max(offset + 1), total + bytes as u64));
        };
        for _ in 0..RECORDS_PER_CALL {
            let committed = self.committed.as_mut().expect("exactly-once replay");
            let step = committed.step::<C, K>(&mut self.reader, &mut read);
            let (end, bytes) = seen.take();
            if bytes > 0 {
                self.metrics.read(end - 1, 0);
                self.metrics.bytes.increment(bytes);
            }
            let committed = self.committed.as_mut().expect("exactly-once replay");
            match step {
                Err(error) => return self.fail(error).map(Cow::Owned),
                Ok(Next::Idle) => return self.went_quiet().map(Cow::Owned),
                Ok(Next::Busy) => {}
                Ok(Next::Event(event)) => {
                    let complete = committed.is_done();
                    return Some(Cow::Owned(self.hand_out(event, complete)));
                }
            }
        }
        // A long run of records that delivered nothing (a writer whose
        // records are all ignored): still idle.
        self.idle_since_delivery().map(Cow::Owned)
    }
}
