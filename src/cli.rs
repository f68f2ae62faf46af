//! What `capture_send` and `capture_recv` share: options, backend selection,
//! the timely cluster configuration, error reporting and progress display.
//!
//! The binaries stay thin front-ends; everything they do is library code a
//! user could call.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::frame::CodecId;
use crate::log::file::FileLog;
use crate::log::LogBackend;
use crate::stream::StreamLayout;

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
            Some(brokers) => Ok(Arc::new(
                crate::log::kafka::KafkaLog::new(brokers, &self.properties)?
                    .with_replication_factor(self.replication_factor),
            )),
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

/// Makes any panic (a failed capture or replay ends its worker with one) a
/// single `PROGRAM: error: MESSAGE` line and exit code 1, without a backtrace.
pub fn exit_on_panic(program: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("worker panicked");
        eprintln!("{program}: error: {message}");
        std::process::exit(1);
    }));
}

/// Prints `PROGRAM: error: ERROR` and exits 1.
pub fn fail(program: &str, error: impl std::fmt::Display) -> ! {
    eprintln!("{program}: error: {error}");
    std::process::exit(1);
}

/// Live totals for the progress display: (records, bytes) summed over sources.
pub type Totals = Arc<Mutex<Vec<Box<dyn Fn() -> (u64, u64) + Send>>>>;

/// A progress bar on stderr while `run` is busy, when stderr is a terminal.
pub struct Progress {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Starts showing `totals` (records out of `expected`, if known).
    pub fn start(totals: Totals, expected: Option<u64>) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Progress { stop, thread: None };
        }
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let bar = match expected {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let template = if expected.is_some() {
                "{elapsed_precise} [{bar:30}] {pos}/{len} records {msg}"
            } else {
                "{elapsed_precise} {spinner} {pos} records {msg}"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            let started = Instant::now();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let (records, bytes) = sum(&totals);
                bar.set_position(records);
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("{:.1} MB, {:.1} MB/s", bytes as f64 / 1e6, bytes as f64 / 1e6 / secs));
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        Progress { stop, thread: Some(thread) }
    }

    /// Stops and clears the bar.
    pub fn finish(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sums the live totals.
pub fn sum(totals: &Totals) -> (u64, u64) {
    let sources = totals.lock().unwrap_or_else(|p| p.into_inner());
    sources.iter().map(|f| f()).fold((0, 0), |(r, b), (r2, b2)| (r + r2, b + b2))
}

/// The final machine-readable line's throughput figure: 10^6 bytes per second.
pub fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / 1e6 / seconds
    } else {
        0.0
    }
}

/// Waits until `topic` exists with at least `partitions` partitions.
pub fn wait_for_topic(log: &dyn LogBackend, topic: &str, partitions: u32, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match log.topic_info(topic)? {
            Some(info) if info.partitions >= partitions => return Ok(()),
            Some(info) if Instant::now() >= deadline => {
                return Err(Error::TooFewPartitions {
                    topic: topic.into(),
                    actual: info.partitions,
                    wanted: partitions,
                })
            }
            None if Instant::now() >= deadline => return Err(Error::MissingTopic(topic.into())),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
