//! Exactly-once through the binaries: `capture_send` killed with SIGKILL at
//! random moments and resumed, a replay that follows the capture across its
//! crash and resume, old writers (paused, and not) on Kafka with the
//! README's recovery, refusals and a corrupt commit.
//!
//! Every capturing worker sends different numbers (`timely_kafka_cli::numbers`), and each
//! replay is checked by count, sum and fingerprint (`capture_recv`'s final
//! line), so one partition twice and another lost cannot pass.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Fingerprint;

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

fn send_with(target: &[&str], count: u64, per_time: &str, workers: usize, extra: &[&str]) -> Command {
    let mut command = bin("capture_send");
    command.args(["t", &count.to_string(), &format!("-w{workers}"), "--records-per-time", per_time]);
    command.args(target).args(extra).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

fn send(target: &[&str], workers: usize, extra: &[&str]) -> Command {
    send_with(target, COUNT, PER_TIME, workers, extra)
}

/// What a complete capture by `workers` workers replays.
fn expected(workers: u64) -> Fingerprint {
    common::capture_send_numbers(workers, COUNT)
}

fn recv(target: &[&str], workers: usize) -> Output {
    let mut command = bin("capture_recv");
    command.args(["t", &format!("-w{workers}"), "--idle-timeout", "20"]).args(target);
    command.output().unwrap()
}

/// Replays `t` and checks it equals a complete capture by `workers` workers.
fn assert_exact(target: &[&str], capture_workers: u64, replay_workers: usize, context: &str) {
    let output = recv(target, replay_workers);
    assert!(output.status.success(), "{context}: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(common::recv_fingerprint(&output.stdout), expected(capture_workers), "{context}");
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
    unsafe { libc::kill(child.id() as i32, signal) };
}

/// One partition as `capture_inspect` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Partition {
    complete: bool,
    /// The committed time, if anything beyond time 0 was committed.
    committed: Option<u64>,
    epochs: u32,
    sessions: u32,
}

/// Every partition of `t` (empty if the topic does not exist yet).
fn inspect(target: &[&str]) -> Vec<Partition> {
    let output = bin("capture_inspect").arg("t").args(target).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .map(|line| {
            let value = |key: &str| {
                line.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{key}="))).unwrap_or_default()
            };
            let committed = value("committed").trim_matches(['[', ']']).parse::<u64>().ok().filter(|t| *t > 0);
            Partition {
                complete: value("complete") == "true",
                committed,
                epochs: value("epochs").parse().unwrap_or(0),
                sessions: value("sessions").parse().unwrap_or(0),
            }
        })
        .collect()
}

/// Waits until every partition of `t` has committed past time 0 and none
/// is complete: the capture is under way, with something to resume from.
fn wait_until_committed(target: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let partitions = inspect(target);
        if !partitions.is_empty() && partitions.iter().all(|p| !p.complete && p.committed.is_some()) {
            return;
        }
        assert!(Instant::now() < deadline, "the capture never committed: {partitions:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until some partition of `t` has committed past time 0 (or
/// completed).
fn wait_for_a_commit(target: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !inspect(target).iter().any(|p| p.committed.is_some() || p.complete) {
        assert!(Instant::now() < deadline, "the capture never committed");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A small deterministic generator (splitmix64): the kill points of a run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1330_11EB);
        (z ^ (z >> 31)) % bound.max(1)
    }
}

/// The seed of this run: `EO_KILL_SEED` replays one, else a new one.
fn seed() -> u64 {
    match std::env::var("EO_KILL_SEED") {
        Ok(seed) => seed.parse().expect("EO_KILL_SEED is a number"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
    }
}

/// Where a SIGKILL of the capture landed, from the log itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Landed {
    /// Nothing beyond time 0 committed in any partition (or nothing stored).
    BeforeFirstCommit,
    /// Some partition committed, and not every stream is complete.
    BetweenCommits,
    /// Too late: every stream had completed.
    AfterCompletion,
}

fn landed(partitions: &[Partition]) -> Landed {
    if !partitions.is_empty() && partitions.iter().all(|p| p.complete) {
        Landed::AfterCompletion
    } else if partitions.iter().any(|p| p.committed.is_some() || p.complete) {
        Landed::BetweenCommits
    } else {
        Landed::BeforeFirstCommit
    }
}

/// Where a SIGKILL of a resume landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ResumeLanded {
    /// Before the resume wrote any epoch record.
    BeforeItsEpoch,
    /// After its epoch record, before the stream completed: a resume killed
    /// mid-way, which the next resume continues.
    DuringItsEpoch,
    /// The resume completed the stream first.
    AfterCompletion,
}

/// The resume after the kills must continue, not restart: each worker
/// whose partition had committed says it resumes from exactly that time,
/// the inputs restart at the earliest of them, and the stream keeps its one
/// session (its epochs grow).
fn check_continued(round: &str, before: &[Partition], after: &[Partition], resumed: &Output) {
    let stderr = stderr(resumed);
    let earliest = before.iter().filter(|p| !p.complete).map(|p| p.committed.unwrap_or(0)).min();
    for (worker, partition) in before.iter().enumerate() {
        if partition.complete {
            assert!(stderr.contains(&format!("worker {worker}: stream already complete")), "{round}: {stderr}");
        } else if let Some(time) = partition.committed {
            let said = format!("worker {worker}: resuming from committed time {time} ");
            assert!(stderr.contains(&said), "{round}: expected {said:?} in {stderr}");
            assert!(after[worker].epochs > partition.epochs && after[worker].sessions == 1, "{round}: {after:?}");
        }
    }
    if let Some(time) = earliest.filter(|_| before.iter().any(|p| p.committed.is_some())) {
        assert!(stderr.contains(&format!("inputs restart at time {time}")), "{round}: {stderr}");
    }
}

/// The pace of the captures the SIGKILL test kills.
const RATE: &str = "--rate=100000";
const COMMIT_INTERVAL: &str = "--commit-interval-ms=20";

#[test]
fn sigkill_at_random_moments_then_resume_replays_exactly_on_the_file_log() {
    let _deadline = common::deadline();
    let seed = seed();
    eprintln!("kill points from seed {seed} (replay them with EO_KILL_SEED={seed})");
    let mut rng = Rng(seed);
    let mut kills = Vec::new();
    let mut resume_kills = Vec::new();
    const ROUNDS: usize = 16;
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        let target = ["--data-dir", data];
        let workers = 1 + round % 3;
        // The capture takes ~0.6 s at this rate and commits every 20 ms.
        // Every fourth round kills within its first 15 ms (start-up, before
        // its first commit); the others at a random moment of the rest of
        // its run, counted from its first commit, so a slow start on a busy
        // machine does not move them all before it.
        let early = round % 4 == 0;
        let kill_after = Duration::from_millis(if early { rng.below(15) } else { rng.below(450) });
        let context = format!(
            "seed {seed} round {round}: killed {kill_after:?} after {}, {workers} workers",
            if early { "the start" } else { "the first commit" }
        );
        let mut child = send(&target, workers, &["--exactly-once", RATE, COMMIT_INTERVAL]).spawn().unwrap();
        if !early {
            wait_for_a_commit(&target);
        }
        std::thread::sleep(kill_after);
        signal(&child, libc::SIGKILL);
        child.wait().unwrap();
        let mut before = inspect(&target);
        kills.push(landed(&before));
        // Every other round, kill the first resume too: half of those at a
        // random moment from its start, half once it wrote an epoch record.
        if round % 2 == 1 && landed(&before) != Landed::AfterCompletion {
            let epochs: u32 = before.iter().map(|p| p.epochs).sum();
            let mut again = send(&target, workers, &["--resume", RATE, COMMIT_INTERVAL]).spawn().unwrap();
            if round % 4 == 3 {
                let deadline = Instant::now() + Duration::from_secs(60);
                while inspect(&target).iter().map(|p| p.epochs).sum::<u32>() <= epochs {
                    assert!(Instant::now() < deadline, "{context}: the resume wrote no epoch record");
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            std::thread::sleep(Duration::from_millis(rng.below(300)));
            signal(&again, libc::SIGKILL);
            again.wait().unwrap();
            before = inspect(&target);
            resume_kills.push(match landed(&before) {
                Landed::AfterCompletion => ResumeLanded::AfterCompletion,
                _ if before.iter().map(|p| p.epochs).sum::<u32>() > epochs => ResumeLanded::DuringItsEpoch,
                _ => ResumeLanded::BeforeItsEpoch,
            });
        }
        let resumed = send(&target, workers, &["--resume"]).output().unwrap();
        if landed(&before) == Landed::AfterCompletion {
            assert!(stderr(&resumed).contains("every stream is complete"), "{context}: {}", stderr(&resumed));
        } else {
            assert!(resumed.status.success(), "{context}: resume failed: {}", stderr(&resumed));
            check_continued(&context, &before, &inspect(&target), &resumed);
        }
        assert_exact(&target, workers as u64, 1 + (round + 1) % 4, &context);
    }
    kills.sort();
    resume_kills.sort();
    eprintln!("seed {seed}: capture kills landed {kills:?}; resume kills {resume_kills:?}");
    let count = |landed: Landed| kills.iter().filter(|k| **k == landed).count();
    assert!(count(Landed::BeforeFirstCommit) >= 1, "seed {seed}: no kill before the first commit: {kills:?}");
    assert!(count(Landed::BetweenCommits) >= ROUNDS / 2, "seed {seed}: most kills between commits: {kills:?}");
    assert!(
        resume_kills.contains(&ResumeLanded::DuringItsEpoch),
        "seed {seed}: no resume killed after its epoch record: {resume_kills:?}"
    );
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
    let stderr = stderr(&resumed);
    assert!(resumed.status.success() && stderr.contains("resuming from"), "{stderr}");
    let output = replay.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(common::recv_fingerprint(&output.stdout), expected(2));
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

/// A refusal: exit 1, one line on stderr, containing `needle`.
fn assert_refused(output: &Output, needle: &str) {
    let stderr = stderr(output);
    assert_eq!(output.status.code(), Some(1), "should be refused: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
}

/// A resume that would regenerate other numbers than the ones committed
/// (another COUNT, `--records-per-time` or codec) or with another worker
/// count is refused in one line, and harms nothing: the right resume then
/// completes the capture exactly.
#[test]
fn resume_refuses_other_generator_settings_and_worker_counts() {
    let _deadline = common::deadline();
    let dir = tempfile::tempdir().unwrap();
    let target = ["--data-dir", dir.path().to_str().unwrap()];
    let mut capture = send(&target, 2, &["--exactly-once", "--rate", "20000"]).spawn().unwrap();
    wait_until_committed(&target);
    signal(&capture, libc::SIGKILL);
    capture.wait().unwrap();
    assert_refused(&send_with(&target, COUNT + 1, PER_TIME, 2, &["--resume"]).output().unwrap(), "COUNT=");
    assert_refused(&send_with(&target, COUNT, "499", 2, &["--resume"]).output().unwrap(), "--records-per-time 499");
    assert_refused(&send(&target, 1, &["--resume"]).output().unwrap(), "same worker count");
    let started = Instant::now();
    assert_refused(&send(&target, 3, &["--resume"]).output().unwrap(), "same worker count");
    assert!(started.elapsed() < Duration::from_secs(20), "refused without waiting for partitions");
    #[cfg(feature = "abomonation")]
    assert_refused(&send(&target, 2, &["--resume", "--codec", "abomonation"]).output().unwrap(), "codec");
    let resumed = send(&target, 2, &["--resume"]).output().unwrap();
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_exact(&target, 2, 3, "after the refusals");
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

/// Bootstrap ports of this test binary: one per test, so tests running at
/// once never meet on one broker (a port merely free when looked at could
/// be taken by two tests starting together).
const PORT_BASE: u16 = 19400;

impl MockBroker {
    fn start(topic: &str, slot: u16) -> MockBroker {
        let port = PORT_BASE + slot;
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

/// Exactly-once on Kafka needs an idempotent producer with `acks=all`;
/// other settings are refused in one line before anything is written.
#[test]
fn exactly_once_refuses_kafka_producer_settings_that_break_it() {
    let _deadline = common::deadline();
    let broker = MockBroker::start("t:2", 1);
    let target = ["--brokers", broker.1.as_str()];
    for (setting, needle) in [
        ("enable.idempotence=false", "enable.idempotence=true"),
        ("acks=1", "acks=all"),
        ("request.required.acks=0", "request.required.acks=all"),
    ] {
        for mode in ["--exactly-once", "--resume"] {
            let refused = send(&target, 2, &[mode, "-X", setting]).output().unwrap();
            assert_refused(&refused, needle);
        }
    }
    assert!(inspect(&target).iter().all(|p| p.sessions == 0), "nothing was written");
    assert!(send(&target, 2, &["--exactly-once"]).output().unwrap().status.success());
    assert_exact(&target, 2, 2, "with the default settings");
}

#[test]
fn a_paused_zombie_woken_after_the_resume_changes_nothing_on_kafka() {
    let _deadline = common::deadline();
    let broker = MockBroker::start("t:2", 2);
    let target = ["--brokers", broker.1.as_str()];
    // ~6 s at this rate: paused well before its end.
    let zombie = send(&target, 2, &["--exactly-once", "--rate", "10000"]).spawn().unwrap();
    wait_until_committed(&target);
    signal(&zombie, libc::SIGSTOP);
    let resumed = send(&target, 2, &["--resume"]).output().unwrap();
    let stderr = stderr(&resumed);
    assert!(resumed.status.success() && stderr.contains("resuming from"), "{stderr}");
    signal(&zombie, libc::SIGCONT);
    let woken = zombie.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&woken.stderr);
    // The zombie notices another writer in its partition and fails loudly.
    assert_eq!(woken.status.code(), Some(1), "the zombie should fail: {stderr}");
    assert_exact(&target, 2, 3, "after the zombie");
}

/// The README's recovery after a resume that met an old writer: a resumed
/// capture that fails leaves its stream incomplete (never a complete stream
/// and exit 1), and `--resume` again, once the old writer is gone,
/// completes it; repeated until it exits 0.
fn follow_the_readme_recovery(target: &[&str], resumed: &Output, old: &Output) {
    assert_eq!(old.status.code(), Some(1), "the old writer must fail: {}", stderr(old));
    assert!(stderr(old).contains("another writer"), "{}", stderr(old));
    let mut last = resumed.clone();
    for attempt in 0..3 {
        if last.status.success() {
            assert_exact(target, 2, 3, &format!("after {attempt} further resumes"));
            return;
        }
        assert!(stderr(&last).contains("another writer"), "attempt {attempt}: {}", stderr(&last));
        let partitions = inspect(target);
        assert!(!partitions.iter().all(|p| p.complete), "a failed resume left a complete stream: {partitions:?}");
        last = send(target, 2, &["--resume"]).output().unwrap();
    }
    panic!("the README's recovery did not complete the stream: {}", stderr(&last));
}

/// An old writer paused in the middle of a commit interval (records sent
/// but not committed), a resume started, the old writer woken while the
/// resume runs: both write into the same partitions. The old writer fails;
/// the resume completes or fails leaving an incomplete stream, and the
/// README's recovery ends with an exact replay.
#[test]
fn an_old_writer_woken_during_the_resume_then_the_readme_recovery_is_exact() {
    let _deadline = common::deadline();
    let broker = MockBroker::start("t:2", 3);
    let target = ["--brokers", broker.1.as_str()];
    let old = send(&target, 2, &["--exactly-once", "--rate", "10000", "--commit-interval-ms", "1000"]).spawn().unwrap();
    wait_until_committed(&target);
    std::thread::sleep(Duration::from_millis(400));
    signal(&old, libc::SIGSTOP);
    let resume = send(&target, 2, &["--resume", "--rate", "20000"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while inspect(&target).iter().any(|p| p.epochs < 2) {
        assert!(Instant::now() < deadline, "the resume never wrote its epoch records");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&old, libc::SIGCONT);
    let old = old.wait_with_output().unwrap();
    let resumed = resume.wait_with_output().unwrap();
    follow_the_readme_recovery(&target, &resumed, &old);
}

/// An old writer that keeps running (never paused) while a resume starts.
#[test]
fn an_old_writer_still_running_during_the_resume_then_the_readme_recovery_is_exact() {
    let _deadline = common::deadline();
    let broker = MockBroker::start("t:2", 4);
    let target = ["--brokers", broker.1.as_str()];
    let old = send(&target, 2, &["--exactly-once", "--rate", "10000"]).spawn().unwrap();
    wait_until_committed(&target);
    let resumed = send(&target, 2, &["--resume", "--rate", "20000"]).output().unwrap();
    let old = old.wait_with_output().unwrap();
    follow_the_readme_recovery(&target, &resumed, &old);
}
