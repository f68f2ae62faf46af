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

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};

/// How long the polling thread waits for an event per poll.
const POLL_STEP: Duration = Duration::from_millis(10);
/// How long [`Polled::wait_delivered`] sleeps between looks.
const WAIT_STEP: Duration = Duration::from_millis(1);

/// A producer whose delivery reports a thread of its own serves.
pub(super) struct Polled {
    producer: Arc<BaseProducer<DefaultProducerContext>>,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
}

impl Polled {
    pub(super) fn new(producer: BaseProducer<DefaultProducerContext>) -> std::io::Result<Self> {
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
    type Target = BaseProducer<DefaultProducerContext>;

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
