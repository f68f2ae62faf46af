// The README's program: capture with four workers, replay with three, on
// the embedded file log. `cargo run --example quickstart`; the crate page
// shows this file, and tests/readme_sync.rs keeps it equal to the README's.
//
// Everything comes from the crate root, and no call names a type: the codec
// comes from the options (Bincode by default), the time and container types
// from the dataflow.

use std::{cell::Cell, rc::Rc};
use timely::dataflow::operators::{Capture, Inspect, Probe, ToStream};
use timely_kafka::{capture, execute, replay, step_until_done, CaptureOptions, FileLog, ReplayLog, ReplayOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("timely-kafka-readme-{}", std::process::id()));
    let log = FileLog::new(&dir); // the embedded log: a directory of segment files

    // Capture with 4 workers: worker w sends w, w + 4, w + 8, ... into partition w of "numbers".
    let capture_log = log.clone();
    execute(timely::Config::process(4), move |worker| {
        let options = CaptureOptions { overwrite: true, ..CaptureOptions::default() };
        let producer = capture(worker, &capture_log, "numbers", options)?;
        let (w, peers) = (worker.index() as u64, worker.peers() as u64);
        worker.dataflow::<u64, _, _>(|scope| {
            (0..1000u64).map(move |i| i * peers + w).to_stream(scope).container::<Vec<u64>>().capture_into(producer)
        });
        Ok(())
    })?;

    // Replay the 4 streams with 3 workers; a worker with nothing to do parks.
    let per_worker = execute(timely::Config::process(3), move |worker| {
        let streams = replay(worker, &log, "numbers", ReplayOptions::default())?;
        let seen = Rc::new(Cell::new((0u64, 0u64))); // (count, sum) on this worker
        let tally = seen.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            streams
                .replay_log(scope)
                .container::<Vec<u64>>()
                .inspect(move |x: &u64| tally.set((tally.get().0 + 1, tally.get().1 + x)))
                .probe()
                .0
        });
        step_until_done(worker, &probe);
        Ok(seen.get())
    })?;
    let (count, sum) = per_worker.iter().fold((0, 0), |(c, s), (wc, ws)| (c + wc, s + ws));
    println!("replayed {count} records, sum {sum}"); // replayed 4000 records, sum 7998000
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
