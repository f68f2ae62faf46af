//! `capture_inspect TOPIC`: one line per partition saying what it holds
//! (sessions, events, offsets, completeness, frontier, foreign records),
//! without replaying it.

use std::time::Duration;

use clap::Parser;
use timely_kafka::inspect::inspect_topic;
use timely_kafka::Result;
use timely_kafka_cli::LogArgs;

const PROGRAM: &str = "capture_inspect";

/// Show what each partition of a captured topic holds.
#[derive(Parser, Debug)]
#[command(name = PROGRAM, version)]
struct Args {
    /// Topic to inspect.
    topic: String,
    /// Bound of each read, in seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    #[command(flatten)]
    log: LogArgs,
}

fn main() {
    let args = Args::parse();
    timely_kafka::exit_on_unhandled_failure(PROGRAM);
    if let Err(error) = run(args) {
        timely_kafka_cli::fail(PROGRAM, error);
    }
}

fn run(args: Args) -> Result<()> {
    let log = args.log.open()?;
    for summary in inspect_topic(log.as_ref(), &args.topic, Duration::from_secs(args.timeout))? {
        println!("{summary}");
    }
    Ok(())
}
