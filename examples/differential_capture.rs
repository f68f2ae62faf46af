//! Computes a differential collection (inserts and retractions over many
//! times) and captures it; `differential_replay` joins and reduces it with
//! another worker count, in another process.
//!
//! ```sh
//! cargo run --features differential --example differential_capture -- pairs -w3
//! cargo run --features differential --example differential_replay -- pairs -w2
//! ```
//! Both print the same `result:` line. Add `--brokers HOST:PORT` for Kafka.

use clap::Parser;
use differential_dataflow::input::Input;
use timely_kafka::differential::CaptureCollection;
use timely_kafka::{capture, execute, CaptureOptions};

#[path = "support/differential.rs"]
mod common;

/// Capture a differential collection.
#[derive(Parser)]
struct Args {
    /// Topic to capture into (replaced if it holds data).
    topic: String,
    /// Rounds (times) of inserts and retractions.
    #[arg(long, default_value_t = 1000)]
    rounds: u64,
    #[command(flatten)]
    setup: common::Setup,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let log = args.setup.log()?;
    let (topic, rounds) = (args.topic.clone(), args.rounds);
    let summaries = execute(args.setup.config(), move |w| {
        let options = CaptureOptions { overwrite: true, ..Default::default() };
        let producer = capture(w, log.as_ref(), &topic, options.clone())?;
        let index = w.index() as u64;
        let summary = common::Summary::default();
        let (mut input, probe) = w.dataflow::<u64, _, _>(|scope| {
            let (input, changes) = scope.new_collection::<common::Pair, isize>();
            let pairs = common::compute(changes);
            pairs.clone().capture_updates(producer);
            (input, common::join_and_reduce(pairs, summary.clone()))
        });
        for round in 0..rounds {
            for (pair, diff) in common::changes(index, round) {
                input.update(pair, diff);
            }
            input.advance_to(round + 1);
            input.flush();
            w.step();
        }
        drop(input);
        w.step_while(|| !probe.done());
        Ok(summary.get())
    })?;
    println!("result: {}", common::Summary::total(summaries));
    Ok(())
}
