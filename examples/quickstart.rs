//! The README's library example: capture a stream with two workers into the
//! embedded file log, then replay it with three. `cargo run --example quickstart`.
//!
//! Everything comes from the crate root, and no call names a type: the codec
//! comes from the options (Bincode by default), the time and container types
//! from the dataflow.

use timely::dataflow::operators::{capture::Replay, Capture, Inspect, Probe, ToStream};
use timely_kafka::{capture, execute, replay, step_until_done, CaptureOptions, FileLog, ReplayOptions, REPLAY_PERIOD};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("timely-kafka-quickstart-{}", std::process::id()));
    let log = FileLog::new(&dir);

    // Capture with two workers: worker i writes partition i of topic "numbers".
    let capture_log = log.clone();
    execute(timely::Config::process(2), move |worker| {
        let options = CaptureOptions { overwrite: true, ..CaptureOptions::default() };
        let producer = capture(worker, &capture_log, "numbers", options)?;
        let first = worker.index() as u64 * 100;
        worker.dataflow::<u64, _, _>(|scope| {
            (first..first + 10).to_stream(scope).container::<Vec<u64>>().capture_into(producer)
        });
        Ok(())
    })?;

    // Replay both streams with three workers (one of them gets none).
    let sums = execute(timely::Config::process(3), move |worker| {
        let streams = replay(worker, &log, "numbers", ReplayOptions::default())?;
        let sum = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let total = sum.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            streams
                .replay_core(scope, Some(REPLAY_PERIOD))
                .container::<Vec<u64>>()
                .inspect(move |x: &u64| total.set(total.get() + x))
                .probe()
                .0
        });
        step_until_done(worker, &probe);
        Ok(sum.get())
    })?;
    println!("replayed sum: {}", sums.iter().sum::<u64>());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
