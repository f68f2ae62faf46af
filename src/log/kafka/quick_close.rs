//! Consumers that close without rust-rdkafka's 100 ms wait.
//!
//! librdkafka's `assign` needs a `group.id`, and rust-rdkafka closes a
//! consumer with a group on drop by polling in 100 ms steps until librdkafka
//! says it is closed. A replay worker drops its readers one after another
//! when its dataflow ends, so it waited 100 ms per reader (measured: 0.5 s
//! for a worker with five partitions, more than the whole replay of a small
//! topic), and every metadata lookup paid it too, as did each consumer an
//! exactly-once start reads with (progress, restore): 100 ms each.
//! [`QuickClose`] closes in
//! 1 ms steps instead (about 1.5 ms measured), bounded by [`CLOSE_WITHIN`];
//! the rust-rdkafka `Drop` that follows finds the consumer closed.

use std::ops::Deref;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, ConsumerContext};

use super::client_errors::ClientErrors;

/// The longest a drop waits for librdkafka to close a consumer.
pub(super) const CLOSE_WITHIN: Duration = Duration::from_secs(1);

/// A consumer client that closes quickly when dropped.
pub(crate) struct QuickClose<C: ConsumerContext = ClientErrors>(BaseConsumer<C>);

impl<C: ConsumerContext> QuickClose<C> {
    /// Wraps `consumer`.
    pub(crate) fn new(consumer: BaseConsumer<C>) -> Self {
        QuickClose(consumer)
    }
}

impl<C: ConsumerContext> Deref for QuickClose<C> {
    type Target = BaseConsumer<C>;
    fn deref(&self) -> &BaseConsumer<C> {
        &self.0
    }
}

impl<C: ConsumerContext> Drop for QuickClose<C> {
    fn drop(&mut self) {
        if self.0.close_queue().is_err() {
            return;
        }
        let deadline = Instant::now() + CLOSE_WITHIN;
        while !self.0.closed() && Instant::now() < deadline {
            let _ = self.0.poll(Duration::from_millis(1));
        }
    }
}
