//! Replays the collection `differential_capture` captured, with any worker
//! count, and joins and reduces it: prints the same `result:` line.

use clap::Parser;
use timely_kafka::differential::ReplayCollection;
use timely_kafka::{execute, replay, ReplayOptions};

#[path = "support/differential.rs"]
mod common;

/// Replay a captured differential collection.
#[derive(Parser)]
struct Args {
    /// Topic to replay.
    topic: String,
    #[command(flatten)]
    setup: common::Setup,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let log = args.setup.log()?;
    let topic = args.topic.clone();
    let summaries = execute(args.setup.config(), move |w| {
        let streams = replay(w, log.as_ref(), &topic, ReplayOptions::default())?;
        let summary = common::Summary::default();
        let probe =
            w.dataflow::<u64, _, _>(|scope| common::join_and_reduce(streams.replay_collection(scope), summary.clone()));
        w.step_while(|| !probe.done());
        Ok(summary.get())
    })?;
    println!("result: {}", common::Summary::total(summaries));
    Ok(())
}
