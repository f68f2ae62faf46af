//! A librdkafka producer whose delivery reports a thread of its own serves,
//! in 10 ms steps: the process's shared producer and the pipelines'
//! transactional producer are both one.
//!
//! rust-rdkafka's `ThreadedProducer` polls in 100 ms steps, and its `flush`
//! waits for an event in steps of up to 100 ms even once the records are
//! out, when another thread served the last delivery report. Measured on
//! Apache Kafka (one node): every capture ended up to 100 ms late (joining
//! the thread), a pipeline's probe transaction took 100 ms, every commit up
//! to 100 ms more, and dropping its producer 100 to 250 ms. A poll returns
//! as soon as a report arrives; the step only bounds how long the thread
//! takes to stop.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

/// How long the polling thread waits for an event per poll.
const POLL_STEP: Duration = Duration::from_millis(10);
/// How long [`PolledProducer::wait_delivered`] sleeps between looks.
const WAIT_STEP: Duration = Duration::from_millis(1);

/// A `BaseProducer` and the thread serving its delivery reports; dropping
/// it stops the thread and serves what is left.
pub(crate) struct PolledProducer<C: ProducerContext + 'static> {
    producer: Arc<BaseProducer<C>>,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
}

impl<C: ProducerContext + 'static> PolledProducer<C> {
    /// Starts the polling thread, named `thread`.
    pub(crate) fn new(producer: BaseProducer<C>, thread: &str) -> std::io::Result<Self> {
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (producer, stop) = (producer.clone(), stop.clone());
            std::thread::Builder::new().name(thread.into()).spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    producer.poll(POLL_STEP);
                }
            })?
        };
        Ok(PolledProducer { producer, stop, poller: Some(poller) })
    }

    /// Waits until every record sent has its delivery report, until
    /// `deadline`; false if some have none by then.
    pub(crate) fn wait_delivered(&self, deadline: Instant) -> bool {
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

impl<C: ProducerContext + 'static> Deref for PolledProducer<C> {
    type Target = BaseProducer<C>;

    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

impl<C: ProducerContext + 'static> Drop for PolledProducer<C> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(poller) = self.poller.take() {
            let _ = poller.join();
        }
        // What arrived after the thread's last poll.
        self.producer.poll(Duration::ZERO);
    }
}
