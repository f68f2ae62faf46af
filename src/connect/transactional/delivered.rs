//! The transactional producer's context: where the state changelogs'
//! delivered records end.
//!
//! It keeps, per partition of the state changelogs (`state/`), one past the
//! largest offset delivered: a commit stores it in its progress record, so a
//! restore knows where the committed state ends and refuses a changelog that
//! no longer reaches it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

/// How long [`wait_reported`] sleeps between looks.
const WAIT_STEP: Duration = Duration::from_millis(1);

/// The producer's context: records where the changelogs' deliveries end.
#[derive(Default)]
pub(super) struct Delivered {
    /// The changelog topics watched (index = position).
    watched: Vec<String>,
    /// Per (watched topic index, partition): one past the largest offset delivered.
    ends: Mutex<BTreeMap<(usize, u32), u64>>,
    /// Delivery reports of watched records served so far (failed ones too).
    reports: AtomicU64,
}

impl Delivered {
    pub(super) fn new(watched: Vec<String>) -> Self {
        Delivered { watched, ..Default::default() }
    }

    /// Per (watched topic index, partition): one past the largest offset delivered.
    pub(super) fn ends(&self) -> BTreeMap<(usize, u32), u64> {
        self.ends.lock().map(|ends| ends.clone()).unwrap_or_default()
    }

    /// Delivery reports of watched records served so far.
    pub(super) fn reports(&self) -> u64 {
        self.reports.load(Ordering::Acquire)
    }
}

impl ClientContext for Delivered {}

impl ProducerContext for Delivered {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let message = match result {
            Ok(message) | Err((_, message)) => message,
        };
        let Some(index) = self.watched.iter().position(|topic| topic == message.topic()) else { return };
        if result.is_ok() && message.partition() >= 0 && message.offset() >= 0 {
            if let Ok(mut ends) = self.ends.lock() {
                let end = ends.entry((index, message.partition() as u32)).or_default();
                *end = (*end).max(message.offset() as u64 + 1);
            }
        }
        self.reports.fetch_add(1, Ordering::Release);
    }
}

/// Waits until `watched` delivery reports of changelog records were served
/// (the queue count drops before a report's callback ran), until
/// `deadline`; false if some were not by then.
pub(super) fn wait_reported(producer: &BaseProducer<Delivered>, watched: u64, deadline: Instant) -> bool {
    loop {
        if producer.context().reports() >= watched {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(WAIT_STEP);
    }
}
