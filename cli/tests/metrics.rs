//! `--metrics-addr` end to end on the file log: a rate-limited exactly-once
//! `capture_send` and a `capture_recv` following it each serve the
//! Prometheus text format; each is scraped over HTTP at least twice. The
//! capture's counters move between scrapes and end at the records sent,
//! with commits and their latency recorded; the replay ends having
//! delivered every record with its lag at 0; every series served is in
//! `timely_kafka::metrics::METRICS` (which docs/operations.md lists).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::metrics::{value, Running};
use timely_kafka_cli::scrape::{max, samples, sum};

const WORKERS: u64 = 2;
const COUNT: u64 = 5_000;

/// How long a scrape may wait for what it is looking for.
const SCRAPE_BOUND: Duration = Duration::from_secs(120);

fn scrape_until(program: &mut Running, addr: SocketAddr, what: &str, done: impl Fn(&str) -> bool) -> String {
    common::metrics::scrape_until(program, addr, what, SCRAPE_BOUND, done)
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn start(program: &str, args: &[&str], dir: &std::path::Path, addr: SocketAddr) -> Running {
    let path = match program {
        "capture_send" => env!("CARGO_BIN_EXE_capture_send"),
        _ => env!("CARGO_BIN_EXE_capture_recv"),
    };
    let child = Command::new(path)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .args(["--metrics-addr", &addr.to_string(), "--metrics-linger", "120"])
        .env_remove("KAFKA_BROKERS")
        .env_remove("TIMELY_KAFKA_METRICS_ADDR")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("binary starts");
    Running(child)
}

/// Every `timely_kafka_` series served is a documented metric.
fn assert_documented(text: &str) {
    let names: Vec<&str> = timely_kafka::metrics::METRICS.iter().map(|m| m.name).collect();
    for sample in samples(text).iter().filter(|s| s.name.starts_with("timely_kafka_")) {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| sample.name.strip_suffix(suffix).filter(|b| names.contains(b)))
            .unwrap_or(&sample.name);
        assert!(names.contains(&base), "served but not in METRICS: {}", sample.name);
    }
}

#[test]
fn the_binaries_serve_metrics_that_move_and_a_lag_that_falls_to_zero() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let (send_addr, recv_addr) = (free_addr(), free_addr());
    let total = (WORKERS * COUNT) as f64;
    // About 5 s of capture at 1000 numbers per second per worker: the first
    // scrape comes well before its end.
    let mut send = start(
        "capture_send",
        &["gauges", &COUNT.to_string(), "-w2", "--rate", "1000", "--records-per-time", "50", "--exactly-once"],
        dir.path(),
        send_addr,
    );
    let first = scrape_until(&mut send, send_addr, "captured records", |t| {
        value(t, "timely_kafka_capture_records_total") > 0.0
    });
    let mut recv = start("capture_recv", &["gauges", "2"], dir.path(), recv_addr);
    let recv_first =
        scrape_until(&mut recv, recv_addr, "a replay's series", |t| t.contains("timely_kafka_replay_records_total"));
    let last = scrape_until(&mut send, send_addr, "every record captured", |t| {
        value(t, "timely_kafka_capture_records_total") == total
    });
    assert!(value(&first, "timely_kafka_capture_records_total") < total, "the first scrape came after the end");
    assert!(value(&last, "timely_kafka_capture_bytes_total") > value(&first, "timely_kafka_capture_bytes_total"));
    assert!(value(&last, "timely_kafka_capture_frames_total") > value(&first, "timely_kafka_capture_frames_total"));
    assert!(value(&last, "timely_kafka_capture_commits_total") >= 2.0, "{last}");
    assert_eq!(
        value(&last, "timely_kafka_capture_commit_seconds_count"),
        value(&last, "timely_kafka_capture_commits_total")
    );
    assert_eq!(sum(&last, "timely_kafka_capture_records_total", &[("partition", "1")]), Some(COUNT as f64));
    // The frontier gauge advanced, to at most the last time (numbers at i / 50).
    let frontier = |text: &str| max(text, "timely_kafka_capture_frontier").unwrap_or(0.0);
    assert!(frontier(&last) > frontier(&first) && frontier(&last) <= ((COUNT - 1) / 50) as f64, "{last}");
    assert_eq!(value(&last, "timely_kafka_capture_uncommitted_bytes"), 0.0, "the final commit covers everything");
    assert_documented(&last);

    let recv_last = scrape_until(&mut recv, recv_addr, "every record replayed", |t| {
        value(t, "timely_kafka_replay_records_total") == total
    });
    assert!(value(&recv_first, "timely_kafka_replay_records_total") < total || recv_first == recv_last);
    assert_eq!(sum(&recv_last, "timely_kafka_replay_lag_records", &[]), Some(0.0), "{recv_last}");
    assert_eq!(samples(&recv_last).iter().filter(|s| s.name == "timely_kafka_replay_lag_records").count(), 2);
    assert_eq!(value(&recv_last, "timely_kafka_replay_bytes_total"), value(&last, "timely_kafka_capture_bytes_total"));
    assert_documented(&recv_last);
}

#[test]
fn an_address_in_use_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_capture_send"))
        .args(["t", "10", "--metrics-addr", &addr, "--data-dir"])
        .arg(dir.path())
        .env_remove("KAFKA_BROKERS")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("capture_send: error: ") && stderr.contains(&addr), "{stderr}");
}
