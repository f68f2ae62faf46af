//! `EventIterator::next`: the checked records handed to timely, and how a
//! replay fails or ends.
//!
//! `EventIterator::next` cannot return an error, so an error is recorded in
//! the consumer's [`Status`](crate::runtime::status::Status) and the
//! consumer closes its frontier, letting the computation end (see
//! [`crate::runtime::failure`]). The consumer also follows the stream's
//! frontier: once it is empty the stream is complete and the consumer
//! stops polling.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::Duration;

use timely::container::Accountable;
use timely::dataflow::operators::capture::event::{Event, EventIterator};
use timely::progress::Timestamp;

use super::EventConsumer;
use crate::capture::replay::protocol::Step;
use crate::capture::wire::codec::EventCodec;
use crate::error::Error;
use crate::log::PartitionReader;
use crate::runtime::failure;

/// Events handed to timely per activation before yielding, so a long
/// backlog is not buffered whole inside the dataflow.
const EVENTS_PER_ACTIVATION: usize = 256;

impl<T, C, R, K> EventIterator<T, C> for EventConsumer<T, C, R, K>
where
    T: Timestamp,
    C: Accountable + Clone,
    R: PartitionReader,
    K: EventCodec<T, C>,
{
    fn next(&mut self) -> Option<Cow<'_, Event<T, C>>> {
        if self.done {
            return None;
        }
        if failure::peer_failed() {
            return self.close().map(Cow::Owned);
        }
        if self.served >= EVENTS_PER_ACTIVATION {
            self.served = 0;
            let end = self.reader.cached_end_offset();
            self.metrics.update_lag(end, false);
            return None;
        }
        if let Some((session, offset)) = self.committed_start.take() {
            self.start_committed(session, offset);
        }
        loop {
            if self.committed.is_some() {
                return self.next_committed();
            }
            // Never wait: the replay operator is activated again after its
            // period, and the worker parks in between (`step_until_done`).
            let step = match self.reader.poll(Duration::ZERO) {
                Err(error) => return self.fail(error).map(Cow::Owned),
                Ok(None) => return self.went_quiet().map(Cow::Owned),
                Ok(Some(record)) => {
                    let shared = self.status.counters();
                    shared.frames.fetch_add(1, Ordering::Relaxed);
                    shared.bytes.fetch_add(record.payload.len() as u64, Ordering::Relaxed);
                    self.metrics.read(record.offset, record.payload.len());
                    self.protocol.accept::<C, K>(record.offset, record.payload, &shared.duplicates)
                }
            };
            match step {
                Err(error) => return self.fail(error).map(Cow::Owned),
                Ok(Step::Skip) => {
                    // Not every skip: a stream header or a chunk is read.
                    let skipped = std::mem::take(&mut self.protocol.skipped);
                    if skipped > 0 {
                        self.metrics.skipped.increment(skipped);
                    }
                    continue;
                }
                Ok(Step::StartMissing) => {
                    // Asked only now: a broker round trip every replay would pay.
                    let first_available = self.reader.first_available_offset().ok().flatten();
                    let offset = self.protocol.last_offset.unwrap_or(0);
                    let error = self.protocol.start_missing(offset, first_available);
                    return self.fail(error).map(Cow::Owned);
                }
                Ok(Step::Committed(session, offset)) => {
                    self.start_committed(session, offset);
                    continue;
                }
                Ok(Step::Deliver(event)) => {
                    let complete = self.protocol.frontier.is_empty();
                    return Some(Cow::Owned(self.hand_out(event, complete)));
                }
            }
        }
    }
}

impl<T: Timestamp, C: Accountable, R: PartitionReader, K> EventConsumer<T, C, R, K> {
    /// Counts an event handed to timely; `complete`: it was the stream's last.
    pub(super) fn hand_out(&mut self, event: Event<T, C>, complete: bool) -> Event<T, C> {
        if let Event::Messages(_, container) = &event {
            let records = container.record_count().max(0) as u64;
            self.status.counters().records.fetch_add(records, Ordering::Relaxed);
            self.metrics.records.increment(records);
        }
        if complete {
            self.metrics.update_lag(None, true);
            self.done = true;
            self.status.set_complete();
        }
        self.served += 1;
        self.delivered_since = true;
        event
    }

    /// Records `error` and closes the frontier (see [`crate::runtime::failure`]).
    pub(super) fn fail(&mut self, error: Error) -> Option<Event<T, C>> {
        self.status.failure().record("replay failed", error);
        self.close()
    }

    /// Ends the stream: the progress event retracting every count this
    /// stream still holds in the replay operator, so no worker waits for it.
    fn close(&mut self) -> Option<Event<T, C>> {
        failure::closing_frontier_after_failure();
        self.done = true;
        let retract: Vec<(T, i64)> = match &mut self.committed {
            Some(committed) => committed.retract_all(),
            None => {
                let retract: Vec<(T, i64)> = self.protocol.frontier.updates().map(|(t, n)| (t.clone(), -n)).collect();
                self.protocol.frontier.update_iter(retract.iter().cloned());
                retract
            }
        };
        Some(Event::Progress(retract))
    }
}
