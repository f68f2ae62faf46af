//! `capture_recv TOPIC [STREAMS] -w M`: replays the captured streams of TOPIC
//! with M workers (worker j takes every stream p with p % M == j) and reports
//! how many records, what sum and what fingerprint (a sum of a per-record
//! hash, see `timely_kafka_cli::fingerprint`) it saw.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use timely::dataflow::operators::{Inspect, Probe};
use timely_kafka::codec::Bincode;
use timely_kafka::codec::EventCodec;
use timely_kafka::log::LogBackend;
use timely_kafka::{execute, replay, step_until_done, ReplayLog, ReplayOptions, Result};
use timely_kafka_cli::{self as cli, fingerprint, LogArgs, Progress, TimelyArgs, Totals};

const PROGRAM: &str = "capture_recv";

/// Replay captured streams of numbers from a partitioned log.
#[derive(Parser, Debug)]
#[command(name = PROGRAM, version)]
struct Args {
    /// Topic to replay.
    topic: String,
    /// Number of captured streams (default: the topic's partition count).
    streams: Option<u32>,
    /// Fail a stream that sees no new record for this many seconds before it completes.
    #[arg(long, default_value_t = 60)]
    idle_timeout: u64,
    /// Accept streams whose header names other Rust types than `u64` and
    /// `Vec<u64>` (the codec must still match, and every event must decode).
    #[arg(long)]
    skip_type_check: bool,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    timely: TimelyArgs,
    #[command(flatten)]
    metrics: cli::MetricsArgs,
}

fn main() {
    let args = Args::parse();
    cli::keep_freed_memory();
    timely_kafka_cli::run_or_fail(PROGRAM, || run(args));
}

fn run(args: Args) -> Result<()> {
    args.metrics.install()?;
    args.log.check_codec()?;
    let config = args.timely.config()?;
    let log = args.log.open()?;

    let totals: Totals = Default::default();
    let progress = Progress::start(totals.clone(), None);
    let started = Instant::now();
    let result = match args.log.codec {
        cli::CodecArg::Bincode => replay_all(&args, config, log, totals.clone(), Bincode),
        #[cfg(feature = "abomonation")]
        cli::CodecArg::Abomonation => replay_all(&args, config, log, totals.clone(), timely_kafka::codec::Abomonation),
        #[cfg(not(feature = "abomonation"))]
        cli::CodecArg::Abomonation => unreachable!("checked by check_codec"),
    };
    let seconds = started.elapsed().as_secs_f64();
    progress.finish();
    let Seen { records, sum, fingerprint, bytes } = result?;
    println!(
        "{PROGRAM}: records={records} sum={sum} fingerprint={fingerprint:016x} bytes={bytes} seconds={seconds:.3} \
         mb_per_s={:.1}",
        cli::mb_per_s(bytes, seconds)
    );
    cli::times::write()?;
    args.metrics.linger();
    Ok(())
}

/// What the replay saw (sum and fingerprint wrap around).
#[derive(Clone, Copy, Default)]
struct Seen {
    records: u64,
    sum: u64,
    fingerprint: u64,
    bytes: u64,
}

impl Seen {
    fn add(self, other: Seen) -> Seen {
        Seen {
            records: self.records + other.records,
            sum: self.sum.wrapping_add(other.sum),
            fingerprint: self.fingerprint.wrapping_add(other.fingerprint),
            bytes: self.bytes + other.bytes,
        }
    }
}

/// Replays on every local worker.
fn replay_all<K>(
    args: &Args,
    config: timely::Config,
    log: Arc<dyn LogBackend>,
    totals: Totals,
    codec: K,
) -> Result<Seen>
where
    K: EventCodec<u64, Vec<u64>> + Clone + Send + Sync,
{
    let topic = args.topic.clone();
    let options = ReplayOptions {
        codec,
        layout: args.log.layout(),
        streams: args.streams,
        idle_timeout: Some(Duration::from_secs(args.idle_timeout)),
        open_timeout: Duration::from_secs(args.idle_timeout.min(10)),
        skip_type_check: args.skip_type_check,
    };
    let results = execute(config, move |worker| {
        let consumers = replay(worker, log.as_ref(), &topic, options.clone())?;
        for consumer in &consumers {
            if let Some(note) = consumer.session_note() {
                eprintln!("{PROGRAM}: {}: {note}", consumer.partition());
            }
            let handle = consumer.status();
            totals.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(move || {
                let stats = handle.stats();
                (stats.records, stats.bytes)
            }));
        }
        let handles: Vec<_> = consumers.iter().map(|c| c.status()).collect();
        let seen = std::rc::Rc::new(std::cell::Cell::new(Seen::default()));
        let counter = seen.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            consumers
                .replay_log(scope)
                .inspect_core(move |event| {
                    if let Ok((time, data)) = event {
                        time.elements().iter().for_each(|t| cli::times::seen(*t));
                        let batch = Seen {
                            records: data.len() as u64,
                            sum: data.iter().fold(0u64, |a, b| a.wrapping_add(*b)),
                            fingerprint: fingerprint::of(data),
                            bytes: 0,
                        };
                        counter.set(counter.get().add(batch));
                    }
                })
                .probe()
                .0
        });
        step_until_done(worker, &probe);
        let bytes = handles.iter().map(|h| h.stats().bytes).sum::<u64>();
        Ok(Seen { bytes, ..seen.get() })
    })?;
    for seen in &results {
        println!("replayed: {}", seen.records);
    }
    Ok(results.into_iter().fold(Seen::default(), Seen::add))
}
