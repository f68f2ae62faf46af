//! `capture_send TOPIC COUNT -w N`: each of N workers captures `0..COUNT` as
//! `u64` into its own partition of TOPIC.
//!
//! `--exactly-once` writes commit points; `--resume` continues such a
//! capture after a crash from its committed frontier, regenerating only the
//! numbers at times at or beyond it (number i is at time i / K with
//! `--records-per-time K`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use timely::dataflow::operators::Capture;
use timely_kafka::capture::exactly_once::ExactlyOnce;
use timely_kafka::capture::resumable::capture_exactly_once;
use timely_kafka::capture::resume::ResumePoint;
use timely_kafka::capture::worker;
use timely_kafka::cli::numbers::{numbers, timed_numbers, Numbers};
use timely_kafka::cli::{self, LogArgs, Progress, TimelyArgs, Totals};
use timely_kafka::log::LogBackend;
use timely_kafka::{Bincode, CaptureOptions, EventCodec, Result};

const PROGRAM: &str = "capture_send";

/// Capture a stream of numbers into a partitioned log.
#[derive(Parser, Debug)]
#[command(name = PROGRAM, version)]
struct Args {
    /// Topic to capture into (created with one partition per worker).
    topic: String,
    /// Each worker captures the numbers 0..COUNT.
    count: u64,
    /// Replace a topic that already holds data.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Capture exactly-once: write commit points; replay delivers only
    /// committed events, and `--resume` can continue after a crash.
    #[arg(long)]
    exactly_once: bool,
    /// Continue the exactly-once capture of TOPIC that did not complete, from
    /// its committed frontier (implies --exactly-once; same -w as before).
    #[arg(long)]
    resume: bool,
    /// Put number i at time i / K (default: every number at time 0), so the
    /// frontier advances and exactly-once captures have points to commit at.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    records_per_time: Option<u64>,
    /// At most R numbers per second per worker (default: no limit).
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
    /// Longest time between a frontier advance and its commit (exactly-once).
    #[arg(long, value_name = "MS", default_value_t = 100)]
    commit_interval_ms: u64,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    timely: TimelyArgs,
}

fn main() {
    let args = Args::parse();
    timely_kafka::exit_on_unhandled_failure(PROGRAM);
    if let Err(error) = run(args) {
        cli::fail(PROGRAM, error);
    }
}

fn run(args: Args) -> Result<()> {
    args.log.check_codec()?;
    let config = args.timely.config()?;
    let log = args.log.open()?;
    log.prepare_writers()?;
    // Created before the timed capture (a resume creates a missing topic in
    // the capture itself); the other processes' workers wait for it there.
    if !args.resume && args.timely.process == 0 {
        let options = CaptureOptions { layout: args.log.layout(), overwrite: args.overwrite, ..Default::default() };
        let streams = args.timely.peers() as u32;
        worker::create_capture_topics(log.as_ref(), &args.topic, streams, args.log.codec.id(), &options)?;
    }

    let totals: Totals = Default::default();
    let expected = args.count * args.timely.workers as u64;
    let progress = Progress::start(totals.clone(), Some(expected));
    let started = Instant::now();
    let result = match args.log.codec {
        cli::CodecArg::Bincode => capture::<Bincode>(&args, config, log, totals.clone()),
        #[cfg(feature = "abomonation")]
        cli::CodecArg::Abomonation => capture::<timely_kafka::codec::Abomonation>(&args, config, log, totals.clone()),
        #[cfg(not(feature = "abomonation"))]
        cli::CodecArg::Abomonation => unreachable!("checked by check_codec"),
    };
    let seconds = started.elapsed().as_secs_f64();
    progress.finish();
    let (records, bytes) = result?;
    println!(
        "{PROGRAM}: records={records} bytes={bytes} seconds={seconds:.3} mb_per_s={:.1}",
        cli::mb_per_s(bytes, seconds)
    );
    Ok(())
}

/// Runs the capture dataflow on every local worker; returns (records, bytes).
fn capture<K>(args: &Args, config: timely::Config, log: Arc<dyn LogBackend>, totals: Totals) -> Result<(u64, u64)>
where
    K: EventCodec<u64, Vec<u64>> + Send,
{
    let (topic, layout) = (args.topic.clone(), args.log.layout());
    let exactly_once = (args.exactly_once || args.resume)
        .then(|| ExactlyOnce { commit_interval: Duration::from_millis(args.commit_interval_ms), ..Default::default() });
    let resume = args.resume;
    let spec = Numbers { count: args.count, per_time: args.records_per_time, from_time: 0, rate: args.rate };
    let plain = spec.per_time.is_none() && spec.rate.is_none() && exactly_once.is_none();
    let outcomes = worker::execute(config, move |worker| {
        // run() created the topic (a resume creates it only if missing).
        let options = CaptureOptions { layout, create_topic: resume, ..Default::default() };
        let (producer, from_time) = match exactly_once {
            None => (worker::capture::<u64, Vec<u64>, K>(worker, log.as_ref(), &topic, &options)?, 0),
            Some(settings) => {
                let (producer, point) =
                    capture_exactly_once::<u64, Vec<u64>, K>(worker, log.as_ref(), &topic, &options, settings, resume)?;
                if resume {
                    eprintln!("{PROGRAM}: worker {}: {}", worker.index(), describe(&point));
                }
                // An empty frontier (a complete stream): regenerate nothing.
                (producer, point.frontier.elements().first().copied().unwrap_or(u64::MAX))
            }
        };
        let handle = producer.handle();
        let watched = handle.clone();
        totals.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(move || {
            let stats = watched.stats();
            (stats.records, stats.bytes)
        }));
        worker.dataflow::<u64, _, _>(|scope| {
            let stream =
                if plain { numbers(scope, spec.count) } else { timed_numbers(scope, Numbers { from_time, ..spec }) };
            stream.capture_into(producer)
        });
        // Park when nothing is active (the producer waits on the broker),
        // leaving the cores to the client threads sending the data.
        while worker.step_or_park(Some(Duration::from_millis(1))) {}
        handle.outcome().map(|stats| (stats.records, stats.bytes))
    })?;
    Ok(outcomes.into_iter().fold((0, 0), |totals, (records, bytes)| (totals.0 + records, totals.1 + bytes)))
}

/// One line on where a resumed worker continues.
fn describe(point: &ResumePoint<u64>) -> String {
    match (point.frontier.elements().first(), point.previous_epochs) {
        (None, _) => "stream already complete; nothing to regenerate".to_string(),
        (Some(time), 0) => format!("no stream stored yet; capturing from time {time}"),
        (Some(time), epochs) => format!(
            "resuming from committed time {time} (commit at offset {}; epoch {})",
            point.commit_offset.map_or_else(|| "none".to_string(), |o| o.to_string()),
            epochs + 1
        ),
    }
}
