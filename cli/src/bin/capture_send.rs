//! `capture_send TOPIC COUNT -w N`: each of N workers captures COUNT numbers
//! as `u64` into its own partition of TOPIC; worker w sends w, w + N, w + 2N,
//! ..., so the whole capture is `0..COUNT * N` (see `timely_kafka_cli::numbers`).
//!
//! `--exactly-once` writes commit points; `--resume` continues such a
//! capture after a crash, every worker regenerating the numbers at times at
//! or beyond the meet of the workers' committed frontiers (a worker's i-th
//! number is at time i / K with `--records-per-time K`); each partition
//! drops what it had committed.
//!
//! Every commit stores, as its resume token, what the generator needs
//! (COUNT, `--records-per-time`, codec): a resume with other values would
//! regenerate different numbers than the ones committed, so it is refused.
//! The token rather than the stream header: the header is written before
//! anything is known to be resumable and its layout is shared by every
//! stream, while the token is the protocol's place for "what the input
//! needs to continue", and a library user stores their own there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use timely::dataflow::operators::{Capture, Inspect};
use timely_kafka::codec::Bincode;
use timely_kafka::codec::CodecId;
use timely_kafka::codec::EventCodec;
use timely_kafka::exactly_once::{self, CommitOptions, ResumePoint, StreamStart};
use timely_kafka::log::LogBackend;
use timely_kafka::{capture, execute, CaptureOptions, Result, StreamLayout};
use timely_kafka_cli::numbers::{numbers, timed_numbers, Numbers};
use timely_kafka_cli::{self as cli, LogArgs, Progress, TimelyArgs, Totals};

const PROGRAM: &str = "capture_send";

/// Capture a stream of numbers into a partitioned log.
#[derive(Parser, Debug)]
#[command(name = PROGRAM, version)]
struct Args {
    /// Topic to capture into (created with one partition per worker).
    topic: String,
    /// Numbers per worker (worker w of N sends w, w + N, ...: 0..COUNT*N in all).
    count: u64,
    /// Replace a topic that already holds data.
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Capture exactly-once: write commit points; replay delivers only
    /// committed events, and `--resume` can continue after a crash.
    #[arg(long)]
    exactly_once: bool,
    /// Continue the exactly-once capture of TOPIC that did not complete: every
    /// worker regenerates from the earliest committed time of all workers,
    /// each partition drops what it had committed (implies --exactly-once;
    /// same -w, COUNT, --records-per-time and --codec as before).
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
    #[command(flatten)]
    metrics: cli::MetricsArgs,
}

fn main() {
    let args = Args::parse();
    timely_kafka_cli::run_or_fail(PROGRAM, || run(args));
}

fn run(args: Args) -> Result<()> {
    args.metrics.install()?;
    args.log.check_codec()?;
    let config = args.timely.config()?;
    let log = args.log.open()?;
    if args.exactly_once || args.resume {
        // Before anything is created or overwritten.
        log.check_exactly_once()?;
    }
    log.prepare_writers()?;
    // Created before the timed capture (a resume creates a missing topic in
    // the capture itself); the other processes' workers wait for it there.
    if !args.resume && args.timely.process == 0 {
        create_topics(log.as_ref(), &args.topic, args.log.layout(), args.timely.peers() as u32, args.overwrite)?;
    }

    let totals: Totals = Default::default();
    let expected = args.count * args.timely.workers as u64;
    let progress = Progress::start(totals.clone(), Some(expected));
    let started = Instant::now();
    let result = match args.log.codec {
        cli::CodecArg::Bincode => capture_all(&args, config, log, totals.clone(), Bincode),
        #[cfg(feature = "abomonation")]
        cli::CodecArg::Abomonation => capture_all(&args, config, log, totals.clone(), timely_kafka::codec::Abomonation),
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
    cli::times::write()?;
    args.metrics.linger();
    Ok(())
}

/// Runs the capture dataflow on every local worker; returns (records, bytes).
fn capture_all<K>(
    args: &Args,
    config: timely::Config,
    log: Arc<dyn LogBackend>,
    totals: Totals,
    codec: K,
) -> Result<(u64, u64)>
where
    K: EventCodec<u64, Vec<u64>> + Clone + Send + Sync,
{
    let (topic, layout) = (args.topic.clone(), args.log.layout());
    let exactly_once = (args.exactly_once || args.resume).then(|| CommitOptions {
        commit_interval: Duration::from_millis(args.commit_interval_ms),
        ..Default::default()
    });
    let start = if args.resume { StreamStart::Resume } else { StreamStart::New };
    let resume = args.resume;
    let spec = Numbers { count: args.count, per_time: args.records_per_time, from_time: 0, rate: args.rate };
    let plain = spec.per_time.is_none() && spec.rate.is_none() && exactly_once.is_none();
    let token = generator_token(&spec, args.log.codec.id());
    let outcomes = execute(config, move |worker| {
        // run() created the topic (a resume creates it only if missing).
        let options = CaptureOptions { layout, create_topic: resume, ..CaptureOptions::default() }.codec(codec.clone());
        let (producer, from_time) = match exactly_once {
            None => (capture(worker, log.as_ref(), &topic, options)?, 0),
            Some(settings) => {
                let (producer, point) = exactly_once::capture(worker, log.as_ref(), &topic, options, settings, start)?;
                if resume {
                    // Each worker checks its own partition's token; an error
                    // ends every worker's capture (see `execute`).
                    same_capture(&topic, &point.token, &token)?;
                    eprintln!("{PROGRAM}: worker {}: {}", worker.index(), describe(&point));
                }
                let stored = token.clone();
                let producer = producer.with_resume_token(move |_| stored.clone());
                // Every input restarts at the meet of the committed frontiers
                // (empty: every stream is complete, regenerate nothing).
                (producer, point.restart_from.elements().first().copied().unwrap_or(u64::MAX))
            }
        };
        let handle = producer.status();
        let watched = handle.clone();
        totals.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(move || {
            let stats = watched.stats();
            (stats.records, stats.bytes)
        }));
        worker.dataflow::<u64, _, _>(|scope| {
            let stream =
                if plain { numbers(scope, spec.count) } else { timed_numbers(scope, Numbers { from_time, ..spec }) };
            stream
                .inspect_core(|event| {
                    if let Ok((time, _)) = event {
                        time.elements().iter().for_each(|t| cli::times::seen(*t));
                    }
                })
                .capture_into(producer)
        });
        // Park when nothing is active (the producer waits on the broker),
        // leaving the cores to the client threads sending the data.
        while worker.step_or_park(Some(Duration::from_millis(1))) {}
        handle.outcome().map(|stats| (stats.records, stats.bytes))
    })?;
    Ok(outcomes.into_iter().fold((0, 0), |totals, (records, bytes)| (totals.0 + records, totals.1 + bytes)))
}

/// The topics of a capture of `streams` streams (one topic of `streams`
/// partitions, or `streams` topics of one), created before the timed part.
fn create_topics(log: &dyn LogBackend, topic: &str, layout: StreamLayout, streams: u32, overwrite: bool) -> Result<()> {
    let mut topics: Vec<(String, u32)> = Vec::new();
    for stream in 0..streams {
        let (name, partition) = layout.locate(topic, stream);
        match topics.iter_mut().find(|(existing, _)| *existing == name) {
            Some((_, partitions)) => *partitions = (*partitions).max(partition + 1),
            None => topics.push((name, partition + 1)),
        }
    }
    topics.into_iter().try_for_each(|(name, partitions)| log.create_topic(&name, partitions, overwrite))
}

/// What the generator needs to regenerate the same numbers, stored as the
/// resume token of every commit. The version names the generator's scheme.
fn generator_token(spec: &Numbers, codec: CodecId) -> Vec<u8> {
    let per_time = spec.per_time.map_or_else(|| "none".to_string(), |k| k.to_string());
    format!("capture_send numbers/2: COUNT={} --records-per-time {per_time} --codec {}", spec.count, codec.name())
        .into_bytes()
}

/// Refuses a resume whose generator would regenerate other numbers than
/// the ones committed (an empty token: nothing was committed yet).
fn same_capture(topic: &str, stored: &[u8], ours: &[u8]) -> Result<()> {
    if stored.is_empty() || stored == ours {
        return Ok(());
    }
    Err(timely_kafka::Error::Config(format!(
        "cannot resume '{topic}': it was captured as `{}`, this run is `{}`; resume with the same COUNT, \
         --records-per-time and --codec",
        String::from_utf8_lossy(stored),
        String::from_utf8_lossy(ours)
    )))
}

/// One line on where a resumed worker continues.
fn describe(point: &ResumePoint<u64>) -> String {
    let restart = match point.restart_from.elements().first() {
        Some(time) => format!("inputs restart at time {time}"),
        None => "nothing to regenerate".to_string(),
    };
    match (point.committed.elements().first(), point.previous_epochs) {
        (None, _) => format!("stream already complete; {restart}"),
        (Some(time), 0) => format!("no stream stored yet (committed time {time}); {restart}"),
        (Some(time), epochs) => format!(
            "resuming from committed time {time} (commit at offset {}; epoch {}); {restart}",
            point.commit_offset.map_or_else(|| "none".to_string(), |o| o.to_string()),
            epochs + 1
        ),
    }
}
