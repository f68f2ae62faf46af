//! The binaries end to end on the file log: final lines, exit codes, and
//! one-line errors for bad input.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::{Command, Output};

fn run(program: &str, args: &[&str], dir: &std::path::Path) -> Output {
    let path = match program {
        "capture_send" => env!("CARGO_BIN_EXE_capture_send"),
        _ => env!("CARGO_BIN_EXE_capture_recv"),
    };
    Command::new(path).args(args).arg("--data-dir").arg(dir).env_remove("KAFKA_BROKERS").output().expect("binary runs")
}

/// The value of `key=` in the program's final stdout line.
fn field(output: &Output, key: &str) -> u64 {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    last.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in final line {last:?}"))
        .parse::<f64>()
        .unwrap() as u64
}

fn assert_ok(output: &Output) {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// A failure is exactly one line on stderr, naming the program, with no panic trace.
fn assert_one_line_error(output: &Output, program: &str, needle: &str) {
    assert!(!output.status.success(), "{program} should have failed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with(&format!("{program}: error: ")), "{stderr}");
    assert!(lines[0].contains(needle), "expected {needle:?} in {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
}

#[test]
fn five_workers_send_three_receive() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let send = run("capture_send", &["numbat", "100000", "-w5"], dir.path());
    assert_ok(&send);
    assert_eq!(field(&send, "records"), 500_000);
    assert!(field(&send, "bytes") > 500_000 * 8);
    let recv = run("capture_recv", &["numbat", "5", "-w3"], dir.path());
    assert_ok(&recv);
    let stdout = String::from_utf8_lossy(&recv.stdout);
    assert_eq!(stdout.lines().filter(|l| l.starts_with("replayed: ")).count(), 3, "{stdout}");
    assert_eq!(common::recv_fingerprint(&recv.stdout), common::capture_send_numbers(5, 100_000));
    assert_eq!(field(&recv, "bytes"), field(&send, "bytes"));
}

#[test]
fn kafkaesque_topic_per_worker_layout() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&run("capture_send", &["old", "1000", "-w3", "--topic-per-worker"], dir.path()));
    assert!(dir.path().join("old-2").exists());
    let recv = run("capture_recv", &["old", "-w2", "--topic-per-worker"], dir.path());
    assert_ok(&recv);
    assert_eq!(common::recv_fingerprint(&recv.stdout), common::capture_send_numbers(3, 1000));
}

#[test]
fn capture_into_a_topic_with_data_needs_overwrite() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&run("capture_send", &["t", "10", "-w2"], dir.path()));
    let again = run("capture_send", &["t", "10", "-w2"], dir.path());
    assert_one_line_error(&again, "capture_send", "--overwrite");
    assert_ok(&run("capture_send", &["t", "7", "-w1", "--overwrite"], dir.path()));
    let recv = run("capture_recv", &["t"], dir.path());
    assert_ok(&recv);
    assert_eq!(common::recv_fingerprint(&recv.stdout), common::capture_send_numbers(1, 7));
}

#[test]
fn count_zero_is_an_empty_but_complete_stream() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&run("capture_send", &["empty", "0", "-w2"], dir.path()));
    let recv = run("capture_recv", &["empty", "-w2"], dir.path());
    assert_ok(&recv);
    assert_eq!(field(&recv, "records"), 0);
}

#[test]
fn corrupt_segment_is_one_clear_line_with_the_offset() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&run("capture_send", &["c", "100000", "-w1"], dir.path()));
    let segment = dir.path().join("c/0/00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&segment, bytes).unwrap();
    let recv = run("capture_recv", &["c"], dir.path());
    assert_one_line_error(&recv, "capture_recv", "topic 'c' partition 0 offset ");
}

#[test]
fn incomplete_stream_fails_after_the_idle_timeout() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&run("capture_send", &["cut", "1000", "-w1"], dir.path()));
    // Drop the final record (the progress that empties the frontier), as if
    // the capture had been killed just before it.
    let segment = dir.path().join("cut/0/00000000000000000000.log");
    let bytes = std::fs::read(&segment).unwrap();
    let mut at = 0;
    let mut last = 0;
    while at < bytes.len() {
        last = at;
        at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    std::fs::write(&segment, &bytes[..last]).unwrap();
    let started = std::time::Instant::now();
    let recv = run("capture_recv", &["cut", "--idle-timeout", "1"], dir.path());
    assert_one_line_error(&recv, "capture_recv", "stream incomplete");
    assert!(String::from_utf8_lossy(&recv.stderr).contains("frontier still [0]"));
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn bad_input_is_one_clear_line() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    assert_one_line_error(&run("capture_recv", &["nope"], dir.path()), "capture_recv", "topic 'nope' does not exist");
    assert_one_line_error(&run("capture_send", &["t", "5", "-w0"], dir.path()), "capture_send", "at least 1");
    assert_ok(&run("capture_send", &["two", "5", "-w2"], dir.path()));
    assert_one_line_error(&run("capture_recv", &["two", "3"], dir.path()), "capture_recv", "has 2 partitions but 3");
    assert_one_line_error(&run("capture_send", &["bad/name", "5"], dir.path()), "capture_send", "invalid topic name");
    if !cfg!(feature = "abomonation") {
        let output = run("capture_recv", &["two", "--codec", "abomonation"], dir.path());
        assert_one_line_error(&output, "capture_recv", "abomonation");
    }
}
