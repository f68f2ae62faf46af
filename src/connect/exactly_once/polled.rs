//! The transactional writer's producer: a librdkafka producer served by a
//! thread of its own that stops within 10 ms.
//!
//! rust-rdkafka's `ThreadedProducer` polls in 100 ms steps and its `flush`
//! waits for an event in steps of up to 100 ms even once the records are
//! out, when another thread served the last delivery report. Measured on
//! Apache Kafka (one node): the probe transaction took 100 ms, every commit
//! up to 100 ms more, and dropping the producer 100 to 250 ms. Here the
//! thread polls in 10 ms steps and [`Polled::wait_delivered`] watches the
//! count of records not yet reported in 1 ms steps.
//!
//! Its context ([`Delivered`]) keeps, per partition of the state changelogs
//! (`state/`), one past the largest offset delivered: a commit stores it in
//! its progress record, so a restore knows where the committed state ends
//! and refuses a changelog that no longer reaches it.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

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

/// How long the polling thread waits for an event per poll.
const POLL_STEP: Duration = Duration::from_millis(10);
/// How long [`Polled::wait_delivered`] sleeps between looks.
const WAIT_STEP: Duration = Duration::from_millis(1);

/// A producer whose delivery reports a thread of its own serves.
pub(super) struct Polled {
    producer: Arc<BaseProducer<Delivered>>,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
}

impl Polled {
    pub(super) fn new(producer: BaseProducer<Delivered>) -> std::io::Result<Self> {
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (producer, stop) = (producer.clone(), stop.clone());
            std::thread::Builder::new().name("timely-kafka transactions".into()).spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    producer.poll(POLL_STEP);
                }
            })?
        };
        Ok(Polled { producer, stop, poller: Some(poller) })
    }

    /// Waits until `watched` delivery reports of changelog records were
    /// served (the queue count drops before a report's callback ran),
    /// until `deadline`; false if some were not by then.
    pub(super) fn wait_reported(&self, watched: u64, deadline: Instant) -> bool {
        loop {
            if self.producer.context().reports() >= watched {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(WAIT_STEP);
        }
    }

    /// Waits until every record sent has its delivery report, until
    /// `deadline`; false if some have none by then.
    pub(super) fn wait_delivered(&self, deadline: Instant) -> bool {
        loop {
            if self.producer.in_flight_count() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(WAIT_STEP);
        }
    }
}

impl Deref for Polled {
    type Target = BaseProducer<Delivered>;

    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

impl Drop for Polled {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(poller) = self.poller.take() {
            let _ = poller.join();
        }
    }
}
