//! What the crate reports to a metrics recorder, through the `metrics`
//! facade: every name, its type, labels and meaning in one table
//! ([`METRICS`]), so the documentation and the exporter cannot drift apart.
//!
//! The library never installs a recorder. Without one every call is a
//! no-op on a handle made once per partition (no allocation, no lock), so
//! a program that does not ask for metrics pays nothing measurable
//! (docs/benchmarks.md). A program that wants them installs a recorder
//! before it opens captures, replays or pipelines (the binaries and
//! examples do with `--metrics-addr`: `metrics-exporter-prometheus`), and
//! may call [`describe`] for the help texts.
//!
//! Names follow Prometheus conventions: counters end in `_total`,
//! durations are histograms in `_seconds`, sizes in `_bytes`. Labels are
//! `topic` and `partition` (a pipeline's transaction metrics: `topic`, the
//! output topic).

use std::any::Any;

/// A metric's type, as Prometheus names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution (buckets chosen by the exporter).
    Histogram,
}

impl Kind {
    /// `counter`, `gauge` or `histogram`, as in the exposition format.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric the crate reports.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// Its name as served.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its labels.
    pub labels: &'static [&'static str],
    /// What it measures (the help text).
    pub help: &'static str,
}

const TP: &[&str] = &["topic", "partition"];
const T: &[&str] = &["topic"];

macro_rules! metrics_table {
    ($($constant:ident = $name:literal, $kind:ident, $labels:ident, $help:literal;)*) => {
        $(
            #[doc = $help]
            pub const $constant: &str = $name;
        )*
        /// Every metric the crate reports.
        pub const METRICS: &[Metric] = &[
            $(Metric { name: $name, kind: Kind::$kind, labels: $labels, help: $help },)*
        ];
    };
}

metrics_table! {
    CAPTURE_RECORDS = "timely_kafka_capture_records_total", Counter, TP,
        "Data records captured (the containers' record counts).";
    CAPTURE_BYTES = "timely_kafka_capture_bytes_total", Counter, TP,
        "Bytes of log records written by a capture, headers included.";
    CAPTURE_FRAMES = "timely_kafka_capture_frames_total", Counter, TP,
        "Log records (frames) written by a capture.";
    CAPTURE_COMMITS = "timely_kafka_capture_commits_total", Counter, TP,
        "Commit records written by an exactly-once capture.";
    CAPTURE_COMMIT_SECONDS = "timely_kafka_capture_commit_seconds", Histogram, TP,
        "Time to write and make durable one commit record of an exactly-once capture.";
    CAPTURE_UNCOMMITTED_BYTES = "timely_kafka_capture_uncommitted_bytes", Gauge, TP,
        "Bytes an exactly-once capture wrote after its last commit (a replay does not deliver them yet).";
    CAPTURE_FRONTIER = "timely_kafka_capture_frontier", Gauge, TP,
        "The least time of the captured stream's frontier, where the time is a number.";
    REPLAY_RECORDS = "timely_kafka_replay_records_total", Counter, TP,
        "Data records a replay delivered to timely.";
    REPLAY_BYTES = "timely_kafka_replay_bytes_total", Counter, TP,
        "Bytes of log records a replay read.";
    REPLAY_LAG = "timely_kafka_replay_lag_records", Gauge, TP,
        "End offset of the partition minus the replay's position (records not read yet).";
    REPLAY_IDLE_SECONDS = "timely_kafka_replay_idle_seconds", Gauge, TP,
        "Seconds since the replay last delivered an event (updated while it looks for more).";
    REPLAY_SKIPPED = "timely_kafka_replay_skipped_records_total", Counter, TP,
        "Records a replay of a plain stream read and skipped: another capture session's, retried duplicates.";
    SOURCE_RECORDS = "timely_kafka_source_records_total", Counter, TP,
        "Records a Kafka source (a pipeline's input) read.";
    SOURCE_LAG = "timely_kafka_source_lag_records", Gauge, TP,
        "A Kafka source's input lag: the partition's high watermark minus the source's position.";
    PIPELINE_COMMITTED = "timely_kafka_pipeline_transactions_committed_total", Counter, T,
        "Transactions an exactly-once pipeline committed (labelled by output topic).";
    PIPELINE_ABORTED = "timely_kafka_pipeline_transactions_aborted_total", Counter, T,
        "Transactions an exactly-once pipeline aborted (a retried commit, outputs sent early).";
    PIPELINE_FENCED = "timely_kafka_pipeline_fenced_total", Counter, T,
        "Times a pipeline's writer was fenced (a newer instance started: this one is a zombie).";
    PIPELINE_TRANSACTION_SECONDS = "timely_kafka_pipeline_transaction_seconds", Histogram, T,
        "Duration of one committed transaction, from its commit call to the broker's answer.";
    PIPELINE_TRANSACTION_BYTES = "timely_kafka_pipeline_transaction_bytes", Histogram, T,
        "Output bytes (keys and values) of one committed transaction.";
    PIPELINE_OUTPUTS = "timely_kafka_pipeline_outputs_total", Counter, T,
        "Output records committed by an exactly-once pipeline.";
    PIPELINE_RESTORE_DROPPED = "timely_kafka_pipeline_restore_dropped_total", Counter, T,
        "Outputs recomputed while a restarted pipeline restores its state, at times an earlier instance committed.";
    PIPELINE_COMMITTED_FRONTIER = "timely_kafka_pipeline_committed_frontier", Gauge, T,
        "The frontier of the pipeline's last commit (its resume frontier before any).";
    PIPELINE_END_TO_END_SECONDS = "timely_kafka_pipeline_end_to_end_seconds", Histogram, T,
        "From an input record's Kafka timestamp to the commit that made its output visible (sampled per fetch).";
}

/// Registers the help text and unit of every metric with the installed
/// recorder (the exporter then serves `# HELP` lines). Call it after
/// installing one; without one it does nothing.
pub fn describe() {
    for metric in METRICS {
        let unit = if metric.name.ends_with("_seconds") {
            Some(metrics::Unit::Seconds)
        } else if metric.name.ends_with("_bytes") || metric.name.ends_with("_bytes_total") {
            Some(metrics::Unit::Bytes)
        } else {
            None
        };
        let help = metrics::SharedString::const_str(metric.help);
        let name = metrics::KeyName::from_const_str(metric.name);
        metrics::with_recorder(|recorder| match metric.kind {
            Kind::Counter => recorder.describe_counter(name, unit, help),
            Kind::Gauge => recorder.describe_gauge(name, unit, help),
            Kind::Histogram => recorder.describe_histogram(name, unit, help),
        });
    }
}

/// `[topic, partition]` labels.
pub(crate) fn partition_labels(topic: &str, partition: u32) -> [(&'static str, String); 2] {
    [("topic", topic.to_string()), ("partition", partition.to_string())]
}

/// A time as a gauge value, where it is a number.
pub(crate) fn as_number<T: Any>(time: &T) -> Option<f64> {
    let time = time as &dyn Any;
    if let Some(t) = time.downcast_ref::<u64>() {
        return Some(*t as f64);
    }
    if let Some(t) = time.downcast_ref::<u32>() {
        return Some(*t as f64);
    }
    if let Some(t) = time.downcast_ref::<usize>() {
        return Some(*t as f64);
    }
    if let Some(t) = time.downcast_ref::<i64>() {
        return Some(*t as f64);
    }
    if let Some(t) = time.downcast_ref::<i32>() {
        return Some(*t as f64);
    }
    if let Some(t) = time.downcast_ref::<std::time::Duration>() {
        return Some(t.as_secs_f64());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn names_follow_the_conventions_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for metric in METRICS {
            assert!(seen.insert(metric.name), "{} twice", metric.name);
            assert!(metric.name.starts_with("timely_kafka_"), "{}", metric.name);
            assert_eq!(metric.kind == Kind::Counter, metric.name.ends_with("_total"), "{}", metric.name);
            if metric.kind == Kind::Histogram {
                assert!(metric.name.ends_with("_seconds") || metric.name.ends_with("_bytes"), "{}", metric.name);
            }
        }
        assert_eq!(as_number(&7u64), Some(7.0));
        assert_eq!(as_number(&(1u64, 2u64)), None);
    }

    /// A recorder that keeps every counter's and gauge's value by name and
    /// labels ("name{topic,partition}").
    #[derive(Default)]
    struct Values(std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Value>>>);

    #[derive(Default)]
    struct Value(std::sync::atomic::AtomicU64);

    impl metrics::CounterFn for Value {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, std::sync::atomic::Ordering::Relaxed);
        }
        fn absolute(&self, value: u64) {
            self.0.store(value, std::sync::atomic::Ordering::Relaxed);
        }
    }

    impl metrics::GaugeFn for Value {
        fn increment(&self, value: f64) {
            self.set(f64::from_bits(self.0.load(std::sync::atomic::Ordering::Relaxed)) + value);
        }
        fn decrement(&self, value: f64) {
            self.increment(-value);
        }
        fn set(&self, value: f64) {
            self.0.store(value.to_bits(), std::sync::atomic::Ordering::Relaxed);
        }
    }

    impl Values {
        fn slot(&self, key: &metrics::Key) -> std::sync::Arc<Value> {
            let labels: Vec<&str> = key.labels().map(|l| l.value()).collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            self.0.lock().unwrap().entry(name).or_default().clone()
        }
        fn counter(&self, name: &str) -> u64 {
            self.0.lock().unwrap().get(name).map_or(0, |v| v.0.load(std::sync::atomic::Ordering::Relaxed))
        }
        fn gauge(&self, name: &str) -> Option<f64> {
            let values = self.0.lock().unwrap();
            values.get(name).map(|v| f64::from_bits(v.0.load(std::sync::atomic::Ordering::Relaxed)))
        }
    }

    impl metrics::Recorder for Values {
        fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
            metrics::Counter::from_arc(self.slot(key))
        }
        fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::from_arc(self.slot(key))
        }
        fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    /// A capture's and a replay's metrics equal their `Status` counters,
    /// and a replay read to the end has no lag.
    #[test]
    fn capture_and_replay_report_what_their_status_counts() {
        use crate::log::LogBackend;
        use timely::dataflow::operators::capture::event::{Event, EventIterator, EventPusher};
        use timely::progress::Stamp;

        let recorder = Values::default();
        let dir = tempfile::tempdir().unwrap();
        let log = crate::FileLog::new(dir.path());
        log.create_topic("m", 1, false).unwrap();
        let (captured, replayed) = metrics::with_local_recorder(&recorder, || {
            let mut producer = crate::EventProducer::<u64, Vec<u64>>::new(log.writer("m", 0).unwrap(), 0, 1).unwrap();
            let status = producer.status();
            producer.push(Event::Messages(Stamp::from_elem(0), (0..100).collect()));
            producer.push(Event::Progress(vec![(0, -1), (7, 1)]));
            producer.push(Event::Messages(Stamp::from_elem(7), (0..50).collect()));
            producer.push(Event::Progress(vec![(7, -1)]));
            producer.finish().unwrap();
            let mut consumer = crate::EventConsumer::<u64, Vec<u64>>::open(&log, "m", 0, Duration::from_secs(5))
                .unwrap()
                .idle_timeout(Duration::from_secs(10));
            let replay = consumer.status();
            while !replay.is_complete() && !replay.is_failed() {
                if consumer.next().is_none() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            (status.stats(), replay.outcome().unwrap())
        });
        assert_eq!(captured.records, 150);
        assert_eq!(recorder.counter("timely_kafka_capture_records_total{m,0}"), captured.records);
        assert_eq!(recorder.counter("timely_kafka_capture_frames_total{m,0}"), captured.frames);
        assert_eq!(recorder.counter("timely_kafka_capture_bytes_total{m,0}"), captured.bytes);
        assert_eq!(recorder.gauge("timely_kafka_capture_frontier{m,0}"), Some(7.0), "the last numeric frontier");
        assert_eq!(recorder.counter("timely_kafka_replay_records_total{m,0}"), replayed.records);
        assert_eq!(recorder.counter("timely_kafka_replay_bytes_total{m,0}"), replayed.bytes);
        assert_eq!(replayed.bytes, captured.bytes);
        assert_eq!(recorder.gauge("timely_kafka_replay_lag_records{m,0}"), Some(0.0));
        assert_eq!(recorder.counter("timely_kafka_replay_skipped_records_total{m,0}"), 0);
    }

    /// docs/operations.md has one table row per metric, in this order,
    /// with its type and labels.
    #[test]
    fn the_operations_page_lists_every_metric() {
        let page = include_str!("../../docs/operations.md");
        let rows: Vec<Vec<String>> = page
            .lines()
            .filter(|line| line.starts_with("| `timely_kafka_"))
            .map(|line| line.split('|').map(|cell| cell.trim().trim_matches('`').to_string()).collect())
            .collect();
        let documented: Vec<(&str, &str, String)> =
            rows.iter().map(|row| (row[1].as_str(), row[2].as_str(), row[3].replace(['`', ' '], ""))).collect();
        let served: Vec<(&str, &str, String)> =
            METRICS.iter().map(|m| (m.name, m.kind.name(), m.labels.join(","))).collect();
        assert_eq!(documented, served);
    }
}
