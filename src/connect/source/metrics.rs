//! A Kafka source's metrics (see [`crate::metrics`]): records read and
//! input lag per partition, and the samples of input timestamps an
//! exactly-once sink turns into end-to-end latency when it commits.
//!
//! Lag is the high watermark of the partition's last fetch response (kept
//! by librdkafka: no round trip) minus the source's position, set once per
//! activation; an end-of-partition event sets it to 0.
//!
//! End-to-end latency is sampled: per activation and partition, the first
//! record's offset and Kafka timestamp go to a process-wide table, bounded
//! per partition. A commit of the pipeline reading that topic takes the
//! samples below its committed offsets and records `now − timestamp`.
//! Only the process that commits sees the samples its own workers read (a
//! pipeline in several processes: those of the committing process).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use rdkafka::consumer::{BaseConsumer, ConsumerContext};

use super::fetch_end::fetched_high_watermark;
use crate::runtime::metrics as m;

/// Samples kept per partition until a commit takes them.
const SAMPLES_PER_PARTITION: usize = 4096;

/// Per (topic, partition): (offset, Kafka timestamp in ms) samples.
type Samples = BTreeMap<(String, u32), VecDeque<(u64, i64)>>;
static SAMPLES: Mutex<Samples> = Mutex::new(BTreeMap::new());

struct Partition {
    records: metrics::Counter,
    lag: metrics::Gauge,
    /// One past the last offset read.
    position: Option<u64>,
    /// The first record of this activation: (offset, timestamp ms).
    sample: Option<(u64, i64)>,
    at_end: bool,
    dirty: bool,
}

/// One source's metrics, per partition it read.
pub(super) struct SourceMetrics {
    topic: String,
    partitions: HashMap<u32, Partition>,
}

impl SourceMetrics {
    pub(super) fn new(topic: &str) -> Self {
        SourceMetrics { topic: topic.to_string(), partitions: HashMap::new() }
    }

    fn partition(&mut self, partition: u32) -> &mut Partition {
        let topic = &self.topic;
        self.partitions.entry(partition).or_insert_with(|| {
            let labels = m::partition_labels(topic, partition);
            Partition {
                records: metrics::counter!(m::SOURCE_RECORDS, &labels),
                lag: metrics::gauge!(m::SOURCE_LAG, &labels),
                position: None,
                sample: None,
                at_end: false,
                dirty: false,
            }
        })
    }

    /// A record read.
    pub(super) fn read(&mut self, partition: u32, offset: u64, timestamp_ms: Option<i64>) {
        let state = self.partition(partition);
        state.records.increment(1);
        state.position = Some(offset + 1);
        state.at_end = false;
        state.dirty = true;
        if state.sample.is_none() {
            if let Some(ms) = timestamp_ms.filter(|ms| *ms > 0) {
                state.sample = Some((offset, ms));
            }
        }
    }

    /// The consumer reached the end of what the partition stores.
    pub(super) fn at_end(&mut self, partition: u32) {
        let state = self.partition(partition);
        state.at_end = true;
        state.dirty = true;
    }

    /// After an activation: sets the lag of every partition read and
    /// hands the timestamp samples to the table.
    pub(super) fn flush<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let mut samples = Vec::new();
        for (partition, state) in self.partitions.iter_mut().filter(|(_, s)| s.dirty) {
            state.dirty = false;
            if state.at_end {
                state.lag.set(0.0);
            } else if let (Some(position), Some(high)) =
                (state.position, fetched_high_watermark(consumer, &self.topic, *partition))
            {
                state.lag.set(high.saturating_sub(position) as f64);
            }
            if let Some(sample) = state.sample.take() {
                samples.push((*partition, sample));
            }
        }
        if samples.is_empty() {
            return;
        }
        let mut table = SAMPLES.lock().unwrap_or_else(|p| p.into_inner());
        for (partition, sample) in samples {
            let queue = table.entry((self.topic.clone(), partition)).or_default();
            if queue.len() >= SAMPLES_PER_PARTITION {
                queue.pop_front();
            }
            queue.push_back(sample);
        }
    }
}

/// The sampled Kafka timestamps (ms) of `topic`'s records before `offsets`
/// (per partition, the next offset a commit stores), taken from the table.
pub(crate) fn take_timestamps(topic: &str, offsets: &BTreeMap<u32, u64>) -> Vec<i64> {
    let mut table = SAMPLES.lock().unwrap_or_else(|p| p.into_inner());
    let mut taken = Vec::new();
    for (partition, next) in offsets {
        if let Some(queue) = table.get_mut(&(topic.to_string(), *partition)) {
            while queue.front().is_some_and(|(offset, _)| offset < next) {
                taken.extend(queue.pop_front().map(|(_, ms)| ms));
            }
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_takes_the_samples_below_its_offsets() {
        let topic = "metrics-sample-test";
        {
            let mut table = SAMPLES.lock().unwrap();
            table.insert((topic.into(), 0), [(3, 30), (9, 90)].into_iter().collect());
            table.insert((topic.into(), 1), [(1, 10)].into_iter().collect());
        }
        let offsets: BTreeMap<u32, u64> = [(0, 5), (1, 2)].into_iter().collect();
        assert_eq!(take_timestamps(topic, &offsets), vec![30, 10]);
        assert_eq!(take_timestamps(topic, &offsets), Vec::<i64>::new(), "taken once");
        let offsets: BTreeMap<u32, u64> = [(0, 10)].into_iter().collect();
        assert_eq!(take_timestamps(topic, &offsets), vec![90]);
    }
}
