//! The abomonation codec (cargo feature `abomonation`; `.ci/run` runs this
//! with `--features abomonation`): round trip, and a stream replayed with the
//! wrong codec is refused before anything decodes.
#![cfg(feature = "abomonation")]

use std::time::Duration;

use timely::dataflow::operators::capture::event::{Event, EventIterator, EventPusher};
use timely::progress::Stamp;
use timely_kafka::codec::Abomonation;
use timely_kafka::codec::Bincode;
use timely_kafka::codec::CodecId;
use timely_kafka::codec::EventCodec;
use timely_kafka::log::file::FileLog;
use timely_kafka::log::LogBackend;
use timely_kafka::{EventConsumer, EventProducer};

fn capture<K: EventCodec<u64, Vec<u64>>>(log: &FileLog, topic: &str) {
    log.create_topic(topic, 1, false).unwrap();
    let mut producer = EventProducer::<u64, Vec<u64>, _, K>::with_codec(log.writer(topic, 0).unwrap(), 0, 1).unwrap();
    producer.push(Event::Messages(Stamp::from_elem(0), (0..5000).collect()));
    producer.push(Event::Messages(Stamp::from_elem(1), vec![7]));
    producer.push(Event::Progress(vec![(0, -1)]));
    producer.finish().unwrap();
}

fn replay<K: EventCodec<u64, Vec<u64>>>(log: &FileLog, topic: &str) -> Result<Vec<Event<u64, Vec<u64>>>, String> {
    let mut consumer = EventConsumer::<u64, Vec<u64>, _, K>::with_codec(log.reader(topic, 0, 0).unwrap())
        .idle_timeout(Duration::from_secs(3));
    let handle = consumer.status();
    let mut events = Vec::new();
    // A failed replay closes its frontier and stops; its handle has the error.
    while !handle.is_complete() && !handle.is_failed() {
        if let Some(event) = consumer.next() {
            events.push(event.into_owned());
        }
    }
    match handle.error() {
        None => Ok(events),
        Some(error) => Err(error.to_string()),
    }
}

#[test]
fn abomonation_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::new(dir.path());
    capture::<Abomonation>(&log, "a");
    let events = replay::<Abomonation>(&log, "a").unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0], Event::Messages(Stamp::from_elem(0), (0..5000).collect()));
    assert_eq!(events[1], Event::Messages(Stamp::from_elem(1), vec![7]));
}

#[test]
fn wrong_codec_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::new(dir.path());
    capture::<Bincode>(&log, "b");
    let error = replay::<Abomonation>(&log, "b").unwrap_err();
    assert!(error.contains("captured with codec 'bincode' but replay expects 'abomonation'"), "{error}");
    assert!(error.contains("topic 'b' partition 0 offset 0"), "{error}");
    capture::<Abomonation>(&log, "c");
    let error = replay::<Bincode>(&log, "c").unwrap_err();
    assert!(error.contains("codec 'abomonation'"), "{error}");
    let _ = CodecId::Abomonation;
}

#[test]
fn cli_round_trip_with_abomonation() {
    let dir = tempfile::tempdir().unwrap();
    let run = |bin: &str, args: &[&str]| {
        std::process::Command::new(bin).args(args).arg("--data-dir").arg(dir.path()).output().unwrap()
    };
    let send = run(env!("CARGO_BIN_EXE_capture_send"), &["ab", "10000", "-w3", "--codec", "abomonation"]);
    assert!(send.status.success(), "{}", String::from_utf8_lossy(&send.stderr));
    let recv = run(env!("CARGO_BIN_EXE_capture_recv"), &["ab", "-w2", "--codec", "abomonation"]);
    assert!(recv.status.success(), "{}", String::from_utf8_lossy(&recv.stderr));
    assert!(String::from_utf8_lossy(&recv.stdout).contains("records=30000 sum=449985000"));
    let wrong = run(env!("CARGO_BIN_EXE_capture_recv"), &["ab", "-w2"]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("captured with codec 'abomonation'"));
}
