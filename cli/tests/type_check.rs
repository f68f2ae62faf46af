//! The stream header's type check and its opt-out: the same data under
//! another Rust type name is refused by default and replays when asked.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::capture::Replay;
use timely::dataflow::operators::{Capture, Inspect, Probe, ToStream};
use timely_kafka::log::file::FileLog;
use timely_kafka::log::LogBackend;
use timely_kafka::{execute, replay, ReplayOptions};
use timely_kafka::{EventConsumer, EventProducer};

/// Encodes exactly as a `u64` (a bincode newtype), under another name.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Reading(u64);

fn capture_readings(log: &FileLog) {
    log.create_topic("readings", 1, false).unwrap();
    let producer = EventProducer::<u64, Vec<Reading>>::new(log.writer("readings", 0).unwrap(), 0, 1).unwrap();
    timely::execute_directly(move |worker| {
        worker.dataflow::<u64, _, _>(|s| {
            (0..1000).map(Reading).to_stream(s).container::<Vec<_>>().capture_into(producer)
        });
    });
}

fn replay_as_numbers(log: FileLog, skip_type_check: bool) -> timely_kafka::Result<Vec<u64>> {
    execute(timely::Config::process(2), move |w| {
        let options =
            ReplayOptions { skip_type_check, idle_timeout: Some(Duration::from_secs(10)), ..Default::default() };
        let streams: Vec<EventConsumer<u64, Vec<u64>>> = replay(w, &log, "readings", options.clone())?;
        let sum = std::rc::Rc::new(std::cell::Cell::new(0));
        let total = sum.clone();
        let probe =
            w.dataflow::<u64, _, _>(|s| streams.replay_into(s).inspect(move |x| total.set(total.get() + x)).probe().0);
        w.step_while(|| !probe.done());
        Ok(sum.get())
    })
}

#[test]
fn another_type_name_is_refused_unless_the_check_is_skipped() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::new(dir.path());
    capture_readings(&log);
    let error = replay_as_numbers(log.clone(), false).unwrap_err().to_string();
    assert!(error.contains("stream holds Event<u64, alloc::vec::Vec<type_check::Reading>>"), "{error}");
    assert!(error.contains("ReplayOptions::skip_type_check"), "{error}");
    let sums = replay_as_numbers(log, true).unwrap();
    assert_eq!(sums.iter().sum::<u64>(), 999 * 1000 / 2);
}

#[test]
fn capture_recv_skip_type_check() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    capture_readings(&FileLog::new(dir.path()));
    let recv = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_capture_recv"))
            .args(["readings", "-w2", "--data-dir"])
            .arg(dir.path())
            .args(extra)
            .env_remove("KAFKA_BROKERS")
            .output()
            .unwrap()
    };
    let refused = recv(&[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--skip-type-check"), "{stderr}");
    let accepted = recv(&["--skip-type-check"]);
    assert!(accepted.status.success(), "{}", String::from_utf8_lossy(&accepted.stderr));
    let stdout = String::from_utf8_lossy(&accepted.stdout);
    assert!(stdout.contains("records=1000 sum=499500"), "{stdout}");
}
