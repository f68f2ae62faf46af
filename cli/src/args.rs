//! Command-line options: which log, how it is configured, and timely's cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use timely_kafka::codec::CodecId;
use timely_kafka::log::file::FileLog;
use timely_kafka::log::LogBackend;
use timely_kafka::StreamLayout;
use timely_kafka::{Error, Result};

/// Options selecting and configuring the log.
#[derive(Clone, Debug, clap::Args)]
pub struct LogArgs {
    /// Directory of the embedded file log (used when no brokers are given).
    #[arg(long, default_value = "./timely-kafka-data")]
    pub data_dir: PathBuf,
    /// Kafka bootstrap servers (host:port[,...]); selects the Kafka backend.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub brokers: Option<String>,
    /// Event codec: bincode (safe) or abomonation (fast, trusted data only;
    /// needs the `abomonation` cargo feature).
    #[arg(long, value_enum, default_value_t = CodecArg::Bincode)]
    pub codec: CodecArg,
    /// Backend property key=value (repeatable): librdkafka properties for
    /// Kafka; segment.bytes and sync for the file log.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
    /// Replication factor of topics created on Kafka (default: the broker's).
    #[arg(long)]
    pub replication_factor: Option<i32>,
    /// Use the original kafkaesque layout: one topic NAME-i per stream.
    #[arg(long)]
    pub topic_per_worker: bool,
}

/// The codec named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CodecArg {
    /// serde + bincode 1.x.
    Bincode,
    /// abomonation.
    Abomonation,
}

impl CodecArg {
    /// The frame codec id.
    pub fn id(self) -> CodecId {
        match self {
            CodecArg::Bincode => CodecId::Bincode,
            CodecArg::Abomonation => CodecId::Abomonation,
        }
    }
}

fn parse_property(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.trim().to_string(), value.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{text}'")),
    }
}

impl LogArgs {
    /// The stream layout selected.
    pub fn layout(&self) -> StreamLayout {
        if self.topic_per_worker {
            StreamLayout::TopicPerWorker
        } else {
            StreamLayout::Partitioned
        }
    }

    /// Opens the selected backend.
    pub fn open(&self) -> Result<Arc<dyn LogBackend>> {
        match &self.brokers {
            Some(brokers) => {
                // `-X timeout.ms` and `-X replication.factor` are the
                // binaries' spellings of the backend's typed settings.
                let mut properties = Vec::new();
                let (mut timeout, mut replication_factor) = (None, self.replication_factor);
                for (key, value) in &self.properties {
                    let number = || {
                        value.parse::<u64>().map_err(|_| Error::Config(format!("-X {key}: not a number: '{value}'")))
                    };
                    match key.as_str() {
                        "timeout.ms" => timeout = Some(Duration::from_millis(number()?)),
                        "replication.factor" => replication_factor = Some(number()? as i32),
                        _ => properties.push((key.clone(), value.clone())),
                    }
                }
                let mut log = timely_kafka::log::kafka::KafkaLog::unchecked(brokers, &properties)?
                    .with_replication_factor(replication_factor);
                if let Some(timeout) = timeout {
                    log = log.with_timeout(timeout);
                }
                Ok(Arc::new(log.checked()?))
            }
            None => Ok(Arc::new(FileLog::new(&self.data_dir).with_properties(&self.properties)?)),
        }
    }

    /// Fails early if the codec is not compiled in.
    pub fn check_codec(&self) -> Result<()> {
        if self.codec == CodecArg::Abomonation && !cfg!(feature = "abomonation") {
            return Err(Error::Config(
                "codec 'abomonation' needs the `abomonation` cargo feature (cargo build --features abomonation)".into(),
            ));
        }
        Ok(())
    }
}

/// timely's cluster options (as `timely::execute_from_args`, but `-h` stays help).
#[derive(Clone, Debug, clap::Args)]
pub struct TimelyArgs {
    /// Worker threads per process.
    #[arg(short = 'w', long = "workers", default_value_t = 1)]
    pub workers: usize,
    /// Number of processes.
    #[arg(short = 'n', long = "processes", default_value_t = 1)]
    pub processes: usize,
    /// Index of this process.
    #[arg(short = 'p', long = "process", default_value_t = 0)]
    pub process: usize,
    /// File with one host:port per process (default 127.0.0.1:2101+i).
    #[arg(long)]
    pub hostfile: Option<PathBuf>,
}

impl TimelyArgs {
    /// Validates the options and builds timely's configuration.
    pub fn config(&self) -> Result<timely::Config> {
        if self.workers == 0 {
            return Err(Error::Config("-w/--workers must be at least 1".into()));
        }
        if self.processes == 0 || self.process >= self.processes {
            return Err(Error::Config(format!(
                "-p/--process {} must be below -n/--processes {}",
                self.process, self.processes
            )));
        }
        let communication = if self.processes > 1 {
            let addresses = match &self.hostfile {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                    let hosts: Vec<String> = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from)
                        .take(self.processes)
                        .collect();
                    if hosts.len() < self.processes {
                        return Err(Error::Config(format!(
                            "{}: {} hosts listed but -n is {}",
                            path.display(),
                            hosts.len(),
                            self.processes
                        )));
                    }
                    hosts
                }
                None => (0..self.processes).map(|i| format!("127.0.0.1:{}", 2101 + i)).collect(),
            };
            timely::CommunicationConfig::Cluster {
                threads: self.workers,
                process: self.process,
                addresses,
                report: false,
                zerocopy: false,
            }
        } else if self.workers > 1 {
            timely::CommunicationConfig::Process(self.workers)
        } else {
            timely::CommunicationConfig::Thread
        };
        Ok(timely::Config { communication, worker: timely::WorkerConfig::default() })
    }

    /// Total workers across all processes.
    pub fn peers(&self) -> usize {
        self.workers * self.processes
    }
}

/// `--metrics-addr`: serve the library's metrics (and nothing else) in the
/// Prometheus text format over HTTP (docs/operations.md).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct MetricsArgs {
    /// Serve metrics in the Prometheus text format at http://ADDR/metrics
    /// (e.g. 127.0.0.1:9464; the endpoint has no authentication, so give a
    /// loopback address unless the network guards it).
    #[arg(long, value_name = "ADDR", env = "TIMELY_KAFKA_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// With --metrics-addr: keep serving for SECS seconds after the work
    /// is done, so a scraper sees the final values of a short run.
    #[arg(long, value_name = "SECS", default_value_t = 0, requires = "metrics_addr")]
    pub metrics_linger: u64,
}

/// Histogram buckets of durations: 1 ms to 60 s.
const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Histogram buckets of sizes: 1 KiB to 64 MiB.
const BYTES_BUCKETS: &[f64] =
    &[1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0];

impl MetricsArgs {
    /// Installs the Prometheus exporter as the process's recorder, if
    /// asked: before any capture, replay or pipeline opens (their handles
    /// are made then).
    pub fn install(&self) -> Result<()> {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        let Some(addr) = self.metrics_addr else { return Ok(()) };
        let failed = |e: &dyn std::fmt::Display| Error::Config(format!("--metrics-addr {addr}: {e}"));
        // Fail here on an address in use, not silently in the exporter's thread.
        drop(std::net::TcpListener::bind(addr).map_err(|e| failed(&e))?);
        PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS))
            .map_err(|e| failed(&e))?
            .install()
            .map_err(|e| failed(&e))?;
        timely_kafka::metrics::describe();
        Ok(())
    }

    /// After the work: keeps serving for `--metrics-linger` seconds.
    pub fn linger(&self) {
        if self.metrics_addr.is_some() && self.metrics_linger > 0 {
            std::thread::sleep(Duration::from_secs(self.metrics_linger));
        }
    }
}
