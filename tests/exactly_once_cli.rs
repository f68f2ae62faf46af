//! Exactly-once through the binaries: `capture_send` killed with SIGKILL at
//! random moments and resumed, a replay that follows the capture across its
//! crash and resume, a paused zombie on Kafka, refusals and a corrupt commit.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const COUNT: u64 = 60_000;
const PER_TIME: &str = "500";

fn bin(name: &str) -> Command {
    let path = match name {
        "capture_send" => env!("CARGO_BIN_EXE_capture_send"),
        "capture_recv" => env!("CARGO_BIN_EXE_capture_recv"),
        "capture_inspect" => env!("CARGO_BIN_EXE_capture_inspect"),
        _ => env!("CARGO_BIN_EXE_mock_broker"),
    };
    let mut command = Command::new(path);
    command.env_remove("KAFKA_BROKERS");
    command
}

fn send(target: &[&str], workers: usize, extra: &[&str]) -> Command {
    let mut command = bin("capture_send");
    command.args(["t", &COUNT.to_string(), &format!("-w{workers}"), "--records-per-time", PER_TIME]);
    command.args(target).args(extra).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

fn field(output: &Output, key: &str) -> u64 {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    last.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {last:?}; stderr: {}", String::from_utf8_lossy(&output.stderr)))
        .parse::<f64>()
        .unwrap() as u64
}

/// (records, sum) of a complete capture by `workers` workers.
fn expected(workers: u64) -> (u64, u64) {
    (COUNT * workers, workers * COUNT * (COUNT - 1) / 2)
}

fn recv(target: &[&str], workers: usize) -> Output {
    let mut command = bin("capture_recv");
    command.args(["t", &format!("-w{workers}"), "--idle-timeout", "20"]).args(target);
    command.output().unwrap()
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
    unsafe { libc::kill(child.id() as i32, signal) };
}

/// Waits until every partition of `t` has committed past time 0 and none
/// is complete: the capture is under way, with something to resume from.
fn wait_until_committed(target: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = bin("capture_inspect").arg("t").args(target).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let committed: Vec<bool> = stdout
            .lines()
            .map(|line| {
                let under_way = line.contains("complete=false");
                let time = line.split("committed=[").nth(1).and_then(|rest| rest.split(']').next());
                under_way && time.and_then(|t| t.parse::<u64>().ok()).is_some_and(|t| t > 0)
            })
            .collect();
        if !committed.is_empty() && committed.iter().all(|c| *c) {
            return;
        }
        assert!(Instant::now() < deadline, "the capture never committed: {stdout}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resumes until the capture completes (a resume may itself be killed).
fn resume_to_completion(target: &[&str], workers: usize) {
    let output = send(target, workers, &["--resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() || stderr.contains("every stream is complete"), "resume failed: {stderr}");
}

#[test]
fn sigkill_at_random_moments_then_resume_replays_exactly_on_the_file_log() {
    let _deadline = common::deadline();
    let mut seed = 0x9e37_79b9_u64;
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        let target = ["--data-dir", data];
        let workers = 1 + round % 3;
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        // The capture takes ~0.4 s at this rate; kill somewhere in 0..500 ms,
        // and every other round kill the first resume too.
        let kill_after = Duration::from_millis((seed >> 33) % 500);
        let mut child = send(&target, workers, &["--exactly-once", "--rate", "150000"]).spawn().unwrap();
        std::thread::sleep(kill_after);
        signal(&child, libc::SIGKILL);
        child.wait().unwrap();
        if round % 2 == 1 {
            let mut again = send(&target, workers, &["--resume", "--rate", "150000"]).spawn().unwrap();
            std::thread::sleep(Duration::from_millis((seed >> 40) % 200));
            signal(&again, libc::SIGKILL);
            again.wait().unwrap();
        }
        resume_to_completion(&target, workers);
        let replay_workers = 1 + (round + 1) % 4;
        let output = recv(&target, replay_workers);
        assert!(output.status.success(), "round {round}: {}", String::from_utf8_lossy(&output.stderr));
        let (records, sum) = expected(workers as u64);
        assert_eq!(
            (field(&output, "records"), field(&output, "sum")),
            (records, sum),
            "round {round}: killed after {kill_after:?}, {workers} capture / {replay_workers} replay workers"
        );
    }
}

#[test]
fn a_replay_follows_the_capture_across_its_crash_and_resume() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let target = ["--data-dir", data];
    let mut capture = send(&target, 2, &["--exactly-once", "--rate", "20000"]).spawn().unwrap();
    wait_until_committed(&target);
    let replay = bin("capture_recv")
        .args(["t", "-w3", "--idle-timeout", "30", "--data-dir", data])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(&capture, libc::SIGKILL);
    capture.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let resumed = send(&target, 2, &["--resume", "--rate", "40000"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success() && stderr.contains("resuming from"), "{stderr}");
    let output = replay.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!((field(&output, "records"), field(&output, "sum")), expected(2));
}

#[test]
fn resume_is_refused_for_a_complete_stream_and_a_plain_capture() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let target = ["--data-dir", dir.path().to_str().unwrap()];
    assert!(send(&target, 2, &["--exactly-once"]).output().unwrap().status.success());
    let refused = send(&target, 2, &["--resume"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("every stream is complete"), "{stderr}");

    assert!(send(&target, 2, &["--overwrite"]).output().unwrap().status.success());
    let refused = send(&target, 2, &["--resume"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not captured exactly-once"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn a_corrupt_commit_record_is_an_error_naming_its_offset() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    assert!(send(&["--data-dir", data], 1, &["--exactly-once"]).output().unwrap().status.success());
    flip_a_byte_in_the_last_record(&dir.path().join("t/0"));
    let output = recv(&["--data-dir", data], 1);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("partition 0") && stderr.contains("offset"), "{stderr}");
    let resumed = send(&["--data-dir", data], 1, &["--resume"]).output().unwrap();
    assert_eq!(resumed.status.code(), Some(1), "{}", String::from_utf8_lossy(&resumed.stdout));
}

/// The last record of an exactly-once stream is its final commit.
fn flip_a_byte_in_the_last_record(partition: &Path) {
    let segment = partition.join("00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    let (mut at, mut last) = (0, 0);
    while at + 8 <= bytes.len() {
        last = at;
        at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    // Corrupt the frame inside the record and fix the segment checksum, so
    // the frame's own checksum is what catches it.
    let len = u32::from_le_bytes(bytes[last..last + 4].try_into().unwrap()) as usize;
    bytes[last + 8 + len - 1] ^= 0x40;
    let crc = crc32c::crc32c(&bytes[last + 8..last + 8 + len]);
    bytes[last + 4..last + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&segment, bytes).unwrap();
}

/// A mock_broker process, killed on drop.
struct MockBroker(Child, String);

impl MockBroker {
    fn start(topic: &str) -> MockBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = bin("mock_broker")
            .args(["--port", &port.to_string(), "--topic", topic])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "mock_broker did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        MockBroker(child, address)
    }
}

impl Drop for MockBroker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_paused_zombie_woken_after_the_resume_changes_nothing_on_kafka() {
    let _deadline = common::deadline();
    let broker = MockBroker::start("t:2");
    let target = ["--brokers", broker.1.as_str()];
    // ~6 s at this rate: paused well before its end.
    let zombie = send(&target, 2, &["--exactly-once", "--rate", "10000"]).spawn().unwrap();
    wait_until_committed(&target);
    signal(&zombie, libc::SIGSTOP);
    let resumed = send(&target, 2, &["--resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success() && stderr.contains("resuming from"), "{stderr}");
    signal(&zombie, libc::SIGCONT);
    let woken = zombie.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&woken.stderr);
    // The zombie notices another writer in its partition and fails loudly.
    assert_eq!(woken.status.code(), Some(1), "the zombie should fail: {stderr}");
    let output = recv(&target, 3);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!((field(&output, "records"), field(&output, "sum")), expected(2));
}
