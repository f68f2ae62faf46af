//! The README's library example: capture a stream into the embedded file log,
//! then replay it in another computation. `cargo run --example quickstart`.

use timely::dataflow::operators::{capture::Replay, Capture, Inspect, Probe, ToStream};
use timely_kafka::{log::file::FileLog, log::LogBackend, CodecId, EventConsumer, EventProducer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let log = FileLog::new("timely-kafka-data");
    log.create_topic("quickstart", 1, CodecId::Bincode, true)?;
    let producer = EventProducer::new(log.writer("quickstart", 0)?, 0, 1)?; // worker 0 of 1
    timely::execute_directly(move |worker| {
        worker.dataflow::<u64, _, _>(|s| (0..10u64).to_stream(s).container::<Vec<_>>().capture_into(producer));
    });
    let consumer = EventConsumer::<u64, Vec<u64>>::open(&log, "quickstart", 0, std::time::Duration::from_secs(5))?;
    timely::execute_directly(move |worker| {
        let probe = worker.dataflow(|s| Some(consumer).replay_into(s).inspect(|x| println!("replayed {x}")).probe().0);
        worker.step_while(|| !probe.done());
    });
    Ok(())
}
