//! A pipeline's metrics (see [`crate::metrics`]), labelled by its output
//! topic: transactions, outputs, restore, and end-to-end latency from the
//! input's sampled Kafka timestamps (see `connect::source::metrics`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::connect::source::metrics::take_timestamps;
use crate::runtime::metrics as m;

pub(super) struct PipelineMetrics {
    input: String,
    committed: metrics::Counter,
    seconds: metrics::Histogram,
    bytes: metrics::Histogram,
    outputs: metrics::Counter,
    pub(super) restore_dropped: metrics::Counter,
    pub(super) frontier: metrics::Gauge,
    end_to_end: metrics::Histogram,
}

impl PipelineMetrics {
    pub(super) fn new(input: &str, output: &str) -> Self {
        let labels = [("topic", output.to_string())];
        PipelineMetrics {
            input: input.to_string(),
            committed: metrics::counter!(m::PIPELINE_COMMITTED, &labels),
            seconds: metrics::histogram!(m::PIPELINE_TRANSACTION_SECONDS, &labels),
            bytes: metrics::histogram!(m::PIPELINE_TRANSACTION_BYTES, &labels),
            outputs: metrics::counter!(m::PIPELINE_OUTPUTS, &labels),
            restore_dropped: metrics::counter!(m::PIPELINE_RESTORE_DROPPED, &labels),
            frontier: metrics::gauge!(m::PIPELINE_COMMITTED_FRONTIER, &labels),
            end_to_end: metrics::histogram!(m::PIPELINE_END_TO_END_SECONDS, &labels),
        }
    }

    /// A transaction committed: `outputs` records of `bytes` bytes, up to
    /// `frontier`, storing the input's next `offsets`, in `took`.
    pub(super) fn committed(
        &self,
        outputs: usize,
        bytes: usize,
        frontier: u64,
        offsets: &BTreeMap<u32, u64>,
        took: Duration,
    ) {
        self.committed.increment(1);
        self.seconds.record(took.as_secs_f64());
        self.bytes.record(bytes as f64);
        self.outputs.increment(outputs as u64);
        self.frontier.set(frontier as f64);
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        for ms in take_timestamps(&self.input, offsets) {
            self.end_to_end.record((now_ms - ms).max(0) as f64 / 1000.0);
        }
    }
}

/// A transaction aborted (not the start-up probe's).
pub(super) fn aborted(output: &str) {
    metrics::counter!(m::PIPELINE_ABORTED, "topic" => output.to_string()).increment(1);
}

/// The writer was fenced by a newer instance.
pub(super) fn fenced(output: &str) {
    metrics::counter!(m::PIPELINE_FENCED, "topic" => output.to_string()).increment(1);
}
