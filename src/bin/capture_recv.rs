//! `capture_recv TOPIC [STREAMS] -w M`: replays the captured streams of TOPIC
//! with M workers (worker j takes every stream p with p % M == j) and reports
//! how many records and what sum it saw.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use timely::dataflow::operators::capture::Replay;
use timely::dataflow::operators::{Inspect, Probe};
use timely_kafka::cli::{self, LogArgs, Progress, TimelyArgs, Totals};
use timely_kafka::log::LogBackend;
use timely_kafka::{Bincode, Error, EventCodec, EventConsumer, Result, StreamLayout};

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
    let streams = stream_count(&args, log.as_ref())?;

    let totals: Totals = Default::default();
    let progress = Progress::start(totals.clone(), None);
    let started = Instant::now();
    let result = match args.log.codec {
        cli::CodecArg::Bincode => replay::<Bincode>(&args, streams, config, log, totals.clone()),
        #[cfg(feature = "abomonation")]
        cli::CodecArg::Abomonation => {
            replay::<timely_kafka::codec::Abomonation>(&args, streams, config, log, totals.clone())
        }
        #[cfg(not(feature = "abomonation"))]
        cli::CodecArg::Abomonation => unreachable!("checked by check_codec"),
    };
    let seconds = started.elapsed().as_secs_f64();
    progress.finish();
    let (records, sum, bytes) = result?;
    println!(
        "{PROGRAM}: records={records} sum={sum} bytes={bytes} seconds={seconds:.3} mb_per_s={:.1}",
        cli::mb_per_s(bytes, seconds)
    );
    Ok(())
}

/// How many streams to replay, checked against what the log holds.
fn stream_count(args: &Args, log: &dyn LogBackend) -> Result<u32> {
    if let Some(0) = args.streams {
        return Err(Error::Config("STREAMS must be at least 1".into()));
    }
    match args.log.layout() {
        StreamLayout::Partitioned => {
            let info = log.topic_info(&args.topic)?.ok_or_else(|| Error::MissingTopic(args.topic.clone()))?;
            // The capture may have used fewer workers than the topic has
            // partitions: its stream header says how many streams it wrote.
            let captured = || -> Result<u32> {
                let wait = Duration::from_secs(args.idle_timeout.min(10));
                let header =
                    timely_kafka::stream::read_first_header(log, StreamLayout::Partitioned, &args.topic, wait)?;
                Ok(header.map(|h| h.peers.clamp(1, info.partitions)).unwrap_or(info.partitions))
            };
            let streams = match args.streams {
                Some(streams) => streams,
                None => captured()?,
            };
            if streams > info.partitions {
                return Err(Error::TooFewPartitions {
                    topic: args.topic.clone(),
                    actual: info.partitions,
                    wanted: streams,
                });
            }
            Ok(streams)
        }
        StreamLayout::TopicPerWorker => {
            let mut found = 0;
            while log.topic_info(&format!("{}-{found}", args.topic))?.is_some() {
                found += 1;
            }
            let streams = args.streams.unwrap_or(found);
            if streams == 0 || streams > found {
                return Err(Error::MissingTopic(format!("{}-{}", args.topic, found)));
            }
            Ok(streams)
        }
    }
}

/// Replays on every local worker; returns (records, sum, bytes).
fn replay<K>(
    args: &Args,
    streams: u32,
    config: timely::Config,
    log: Arc<dyn LogBackend>,
    totals: Totals,
) -> Result<(u64, u64, u64)>
where
    K: EventCodec<u64, Vec<u64>> + Send,
{
    let (topic, layout) = (args.topic.clone(), args.log.layout());
    let idle_timeout = Duration::from_secs(args.idle_timeout);
    let open_timeout = idle_timeout.min(Duration::from_secs(10));
    let guards = timely::execute(config, move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        // Open this worker's streams in parallel: choosing each one's session
        // costs broker round trips that need not wait for one another.
        let assigned: Vec<u32> = StreamLayout::assigned(streams, index, peers).collect();
        let consumers: Vec<EventConsumer<u64, Vec<u64>, _, K>> = std::thread::scope(|scope| {
            let opening: Vec<_> = assigned
                .iter()
                .map(|&stream| {
                    let (name, partition) = layout.locate(&topic, stream);
                    let log = log.as_ref();
                    scope.spawn(move || {
                        let consumer = EventConsumer::<u64, Vec<u64>, _, K>::open(log, &name, partition, open_timeout)
                            .unwrap_or_else(|e| panic!("{e}"))
                            .idle_timeout(idle_timeout);
                        if let Some(note) = consumer.session_note() {
                            eprintln!("{PROGRAM}: topic '{name}' partition {partition}: {note}");
                        }
                        consumer
                    })
                })
                .collect();
            opening.into_iter().map(|handle| handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        for consumer in &consumers {
            let handle = consumer.handle();
            totals.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(move || {
                let stats = handle.stats();
                (stats.records, stats.bytes)
            }));
        }
        let handles: Vec<_> = consumers.iter().map(|c| c.handle()).collect();
        let seen = std::rc::Rc::new(std::cell::Cell::new((0u64, 0u64)));
        let counter = seen.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            consumers
                .replay_into(scope)
                .inspect_core(move |event| {
                    if let Ok((_, data)) = event {
                        let (count, sum) = counter.get();
                        let batch: u64 = data.iter().fold(0u64, |a, b| a.wrapping_add(*b));
                        counter.set((count + data.len() as u64, sum.wrapping_add(batch)));
                    }
                })
                .probe()
                .0
        });
        while !probe.done() {
            worker.step();
        }
        let (records, sum) = seen.get();
        println!("replayed: {records}");
        let bytes = handles.iter().map(|h| h.stats().bytes).sum::<u64>();
        (records, sum, bytes)
    })
    .map_err(Error::Config)?;
    let mut totals = (0u64, 0u64, 0u64);
    for result in guards.join() {
        let (records, sum, bytes) = result.map_err(Error::Config)?;
        totals = (totals.0 + records, totals.1.wrapping_add(sum), totals.2 + bytes);
    }
    Ok(totals)
}
