//! The binaries over Kafka: `capture_send` and `capture_recv` as separate
//! processes meeting on a `mock_broker` process, and bounded-time errors.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin(name: &str) -> Command {
    let path = match name {
        "capture_send" => env!("CARGO_BIN_EXE_capture_send"),
        "capture_recv" => env!("CARGO_BIN_EXE_capture_recv"),
        _ => env!("CARGO_BIN_EXE_mock_broker"),
    };
    let mut command = Command::new(path);
    command.env_remove("KAFKA_BROKERS");
    command
}

/// A mock_broker process, killed on drop.
struct MockBroker {
    child: Child,
    address: String,
}

impl MockBroker {
    fn start(topics: &[&str]) -> MockBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = bin("mock_broker");
        command.arg("--port").arg(port.to_string()).stdout(Stdio::null()).stderr(Stdio::null());
        for topic in topics {
            command.arg("--topic").arg(topic);
        }
        let child = command.spawn().unwrap();
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "mock_broker did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        MockBroker { child, address }
    }
}

impl Drop for MockBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field(output: &Output, key: &str) -> u64 {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    last.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {last:?}"))
        .parse::<f64>()
        .unwrap() as u64
}

fn ok(output: Output) -> Output {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

fn one_line_error(output: &Output, needle: &str) {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
}

#[test]
fn send_and_receive_processes_meet_on_mock_broker() {
    let _deadline = common::deadline();
    let broker = MockBroker::start(&["numbat:5"]);
    let send = ok(bin("capture_send").args(["numbat", "20000", "-w5", "--brokers", &broker.address]).output().unwrap());
    assert_eq!(field(&send, "records"), 100_000);
    let recv = ok(bin("capture_recv").args(["numbat", "5", "-w3", "--brokers", &broker.address]).output().unwrap());
    assert_eq!(common::recv_fingerprint(&recv.stdout), common::capture_send_numbers(5, 20_000));
    assert_eq!(field(&recv, "bytes"), field(&send, "bytes"));
    // KAFKA_BROKERS selects Kafka as well as --brokers does.
    let again =
        bin("capture_send").args(["numbat", "10", "-w5"]).env("KAFKA_BROKERS", &broker.address).output().unwrap();
    one_line_error(&again, "already holds data");
}

#[test]
fn topic_per_worker_layout_over_kafka() {
    let _deadline = common::deadline();
    let broker = MockBroker::start(&["old-0:1", "old-1:1"]);
    ok(bin("capture_send")
        .args(["old", "1000", "-w2", "--topic-per-worker", "--brokers", &broker.address])
        .output()
        .unwrap());
    let recv = ok(bin("capture_recv")
        .args(["old", "-w3", "--topic-per-worker", "--brokers", &broker.address])
        .output()
        .unwrap());
    assert_eq!(common::recv_fingerprint(&recv.stdout), common::capture_send_numbers(2, 1000));
}

#[test]
fn kafka_errors_are_bounded_and_one_line() {
    let _deadline = common::deadline();
    let broker = MockBroker::start(&["few:2", "empty:1"]);
    let missing = bin("capture_recv").args(["nope", "--brokers", &broker.address]).output().unwrap();
    one_line_error(&missing, "topic 'nope' does not exist");
    let too_many = bin("capture_recv").args(["few", "3", "--brokers", &broker.address]).output().unwrap();
    one_line_error(&too_many, "has 2 partitions but 3");
    let too_few = bin("capture_send").args(["few", "10", "-w3", "--brokers", &broker.address]).output().unwrap();
    one_line_error(&too_few, "has 2 partitions but 3");
    let started = Instant::now();
    let empty =
        bin("capture_recv").args(["empty", "--idle-timeout", "1", "--brokers", &broker.address]).output().unwrap();
    one_line_error(&empty, "stream incomplete");
    assert!(started.elapsed() < Duration::from_secs(20));

    // Nothing listens on this port: a clear error within the configured bound.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let unreachable = bin("capture_send")
        .args(["t", "10", "--brokers", &format!("127.0.0.1:{port}"), "-X", "timeout.ms=2000"])
        .output()
        .unwrap();
    one_line_error(&unreachable, "did not answer within 2s");
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
}
