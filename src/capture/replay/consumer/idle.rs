//! The idle timeout: a replay that delivers nothing for that long before
//! its stream completes is reported incomplete instead of waiting forever.
//!
//! Idle means "no event delivered", not "no bytes read": records the
//! replay skips (an old writer's, an epoch broken by a gap, another
//! session's) keep arriving from a writer that can never complete the
//! stream, and must not keep the replay waiting.

use std::time::Instant;

use timely::container::Accountable;
use timely::dataflow::operators::capture::event::Event;
use timely::progress::Timestamp;

use super::EventConsumer;
use crate::error::Error;
use crate::log::PartitionReader;

impl<T: Timestamp, C: Accountable, R: PartitionReader, K> EventConsumer<T, C, R, K> {
    /// Nothing to read now: notes when the stream went quiet and fails it
    /// once it has been quiet for the idle timeout.
    pub(super) fn went_quiet(&mut self) -> Option<Event<T, C>> {
        if self.served > 0 || self.delivered_since {
            // Once per activation that delivered: the end as librdkafka's
            // last fetch reported it (no round trip).
            let end = self.reader.cached_end_offset();
            self.metrics.update_lag(end, true);
        }
        self.metrics.idle_seconds.set(self.last_activity.elapsed().as_secs_f64());
        self.served = 0;
        self.idle_since_delivery()
    }

    /// Idle is measured from the last delivery: the first look after one
    /// starts the clock (no clock read per event), records read since
    /// without delivering anything do not restart it.
    pub(super) fn idle_since_delivery(&mut self) -> Option<Event<T, C>> {
        if std::mem::take(&mut self.delivered_since) {
            self.last_activity = Instant::now();
        }
        self.check_idle()
    }

    /// Fails the replay once it has been idle for the idle timeout.
    fn check_idle(&mut self) -> Option<Event<T, C>> {
        if let Some(timeout) = self.idle_timeout {
            let idle = self.last_activity.elapsed();
            if idle >= timeout {
                let frontier = match &self.committed {
                    Some(committed) => match committed.broken() {
                        None => format!("{:?} (committed)", committed.frontier().elements()),
                        Some(reason) => format!(
                            "{:?} (committed; {reason}: resume the capture to continue)",
                            committed.frontier().elements()
                        ),
                    },
                    None => format!("{:?}", self.protocol.frontier.frontier().to_vec()),
                };
                let last_offset = self.protocol.last_offset;
                let at = self.protocol.id.clone();
                return self.fail(Error::Incomplete { at, last_offset, frontier, idle_secs: idle.as_secs() });
            }
        }
        None
    }
}
