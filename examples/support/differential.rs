//! What `differential_capture` and `differential_replay` share: where the
//! log is, the input changes, the captured collection, and the join +
//! reduce both run on it.
#![allow(dead_code)]

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use differential_dataflow::VecCollection;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::ProbeHandle;
use timely_kafka::log::file::FileLog;
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;

#[path = "properties.rs"]
mod properties;

/// Which log to use, and how many workers.
#[derive(clap::Args)]
pub struct Setup {
    /// Directory of the embedded file log (used unless --brokers is given).
    #[arg(long, default_value = "timely-kafka-data")]
    pub data_dir: PathBuf,
    /// Kafka bootstrap servers (host:port): use Kafka instead of the file log.
    #[arg(long)]
    pub brokers: Option<String>,
    /// With --brokers: a librdkafka property KEY=VALUE (repeatable), e.g.
    /// `-X security.protocol=SASL_SSL`.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = properties::parse)]
    pub properties: Vec<(String, String)>,
    /// Worker threads.
    #[arg(short = 'w', long = "workers", default_value_t = 1)]
    pub workers: usize,
}

impl Setup {
    /// The log: either backend behind the one `LogBackend` interface.
    pub fn log(&self) -> timely_kafka::Result<Arc<dyn LogBackend>> {
        Ok(match &self.brokers {
            Some(brokers) => Arc::new(KafkaLog::new(brokers, &self.properties)?),
            None => Arc::new(FileLog::new(&self.data_dir)),
        })
    }

    /// timely's configuration: this many worker threads in one process.
    pub fn config(&self) -> timely::Config {
        timely::Config::process(self.workers.max(1))
    }
}

pub type Pair = (u64, u64);
pub type Updates = Vec<(Pair, u64, isize)>;

const KEYS: u64 = 100;

/// Worker `w`'s changes at `round`: one insert, and the retraction of its
/// insert a hundred rounds earlier.
pub fn changes(w: u64, round: u64) -> Vec<(Pair, isize)> {
    let record = |r: u64| ((r * 7 + w * 3) % KEYS, r * 1000 + w);
    let mut changes = vec![(record(round), 1)];
    if round >= 100 {
        changes.push((record(round - 100), -1));
    }
    changes
}

/// The collection that is captured: computed from the input changes.
pub fn compute(changes: VecCollection<'_, u64, Pair>) -> VecCollection<'_, u64, Pair> {
    changes.map(|(k, v)| (k, v / 10)).filter(|(_, v)| v % 3 != 0)
}

/// Final contents of the result: (records, sum of counts, checksum), summed over workers.
#[derive(Clone, Default)]
pub struct Summary(Rc<Cell<(i64, i64, u64)>>);

impl Summary {
    pub fn get(&self) -> (i64, i64, u64) {
        self.0.get()
    }
    pub fn total(parts: Vec<(i64, i64, u64)>) -> String {
        let (records, counts, checksum) =
            parts.into_iter().fold((0, 0, 0u64), |t, p| (t.0 + p.0, t.1 + p.1, t.2.wrapping_add(p.2)));
        format!("records={records} count_sum={counts} checksum={checksum:016x}")
    }
}

/// Joins each pair with its key's count (a reduce), and sums the final
/// contents of that join into `summary`.
pub fn join_and_reduce(pairs: VecCollection<'_, u64, Pair>, summary: Summary) -> ProbeHandle<u64> {
    let counts = pairs.clone().map(|(k, _)| k).count();
    pairs
        .join(counts)
        .inner
        .inspect(move |((k, (v, count)), _time, diff)| {
            let (records, counts, checksum) = summary.0.get();
            let hash = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ v).wrapping_mul(*count as u64 + 1);
            summary.0.set((
                records + *diff as i64,
                counts + (*count as i64) * (*diff as i64),
                checksum.wrapping_add(hash.wrapping_mul(*diff as u64)),
            ));
        })
        .probe()
        .0
}
