//! `capture_send TOPIC COUNT -w N`: each of N workers captures `0..COUNT` as
//! `u64` into its own partition of TOPIC.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use timely::dataflow::operators::Capture;
use timely_kafka::capture::worker;
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
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    timely: TimelyArgs,
}

fn main() {
    let args = Args::parse();
    cli::exit_on_panic(PROGRAM);
    if let Err(error) = run(args) {
        cli::fail(PROGRAM, error);
    }
}

fn run(args: Args) -> Result<()> {
    args.log.check_codec()?;
    let config = args.timely.config()?;
    let log = args.log.open()?;
    let streams = args.timely.peers() as u32;
    let layout = args.log.layout();
    let codec = args.log.codec.id();
    let names: Vec<String> = match layout {
        timely_kafka::StreamLayout::Partitioned => vec![args.topic.clone()],
        timely_kafka::StreamLayout::TopicPerWorker => (0..streams).map(|i| layout.locate(&args.topic, i).0).collect(),
    };
    let partitions = if names.len() == 1 { streams } else { 1 };
    for name in &names {
        if args.timely.process == 0 {
            log.create_topic(name, partitions, codec, args.overwrite)?;
        } else {
            cli::wait_for_topic(log.as_ref(), name, partitions, Duration::from_secs(30))?;
        }
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
    let (topic, count, layout) = (args.topic.clone(), args.count, args.log.layout());
    let guards = timely::execute(config, move |worker| {
        // run() created the topic; this opens partition `worker.index()`.
        let options = CaptureOptions { layout, create_topic: false, ..Default::default() };
        let producer = worker::capture::<u64, Vec<u64>, K>(worker, log.as_ref(), &topic, &options)?;
        let handle = producer.handle();
        let watched = handle.clone();
        totals.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(move || {
            let stats = watched.stats();
            (stats.records, stats.bytes)
        }));
        worker.dataflow::<u64, _, _>(|scope| timely_kafka::numbers::numbers(scope, count).capture_into(producer));
        while worker.step() {}
        handle.outcome().map(|stats| (stats.records, stats.bytes))
    })
    .map_err(timely_kafka::Error::Config)?;
    let mut totals = (0, 0);
    for result in guards.join() {
        let (records, bytes) = result.map_err(timely_kafka::Error::Config)??;
        totals = (totals.0 + records, totals.1 + bytes);
    }
    Ok(totals)
}
