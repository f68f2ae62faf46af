//! A replay that follows a live exactly-once capture on the file log across
//! the capture's SIGKILL and its `--resume` (issue 18, defect 2).
//!
//! Each time step holds 1,000,000 numbers (8 MB), so the writer's 1 MiB
//! buffer is written mid-record and a kill leaves a torn tail that a
//! following reader has read into; the resume cuts it and appends in its
//! place. Two followers watch: `capture_recv` (count and sum of all
//! partitions) and one library replay per partition in this process (count,
//! sum and a per-record hash of each partition's numbers, so one partition
//! delivered twice and another lost cannot cancel out). The kill moment is
//! random per run: the seed is printed (set `EO_SEED` to repeat one), and the
//! test asserts where each kill landed: after a commit, before the end, with
//! the followers live and a torn tail left behind.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Fingerprint;
use timely::dataflow::operators::capture::event::{Event, EventIterator};
use timely_kafka::log::file::FileLog;
use timely_kafka::EventConsumer;

const COUNT: u64 = 8_000_000;
const PER_TIME: u64 = 1_000_000;
const WORKERS: u32 = 2;
/// Numbers per second per worker: ~5 s of capture, slow enough for debug
/// builds of the followers to keep up with it.
const RATE: &str = "1500000";
const ROUNDS: u64 = 2;

fn bin(name: &str) -> Command {
    let path = match name {
        "capture_send" => env!("CARGO_BIN_EXE_capture_send"),
        _ => env!("CARGO_BIN_EXE_capture_recv"),
    };
    let mut command = Command::new(path);
    command.env_remove("KAFKA_BROKERS").stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

fn send(data: &str, extra: &[&str]) -> Command {
    let mut command = bin("capture_send");
    command.args(["t", &COUNT.to_string(), &format!("-w{WORKERS}"), "--records-per-time", &PER_TIME.to_string()]);
    command.args(["--data-dir", data]).args(extra);
    command
}

/// A child process killed (by its pid) if the test fails before reaping it.
struct Reaped(Option<Child>);

impl Reaped {
    fn kill(&mut self) {
        if let Some(child) = self.0.as_mut() {
            // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            let _ = child.wait();
        }
        self.0 = None;
    }
    fn output(mut self) -> Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Follows partition `p` of `t` until its stream completes; counts what it
/// delivered in `live` as it goes.
fn follow(
    data: std::path::PathBuf,
    p: u32,
    live: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Result<Fingerprint, String>> {
    std::thread::spawn(move || {
        let log = FileLog::new(data);
        let consumer = EventConsumer::<u64, Vec<u64>>::open(&log, "t", p, Duration::from_secs(30))
            .map_err(|e| e.to_string())?
            .idle_timeout(Duration::from_secs(30));
        let mut consumer = consumer;
        let handle = consumer.status();
        let mut fingerprint = Fingerprint::default();
        while !handle.is_complete() && !handle.is_failed() {
            if let Some(event) = consumer.next() {
                if let Event::Messages(_, data) = event.into_owned() {
                    live.fetch_add(data.len() as u64, Ordering::Relaxed);
                    data.into_iter().for_each(|x| fingerprint.add(x));
                }
            }
        }
        handle.error().map_or(Ok(fingerprint), |e| Err(e.to_string()))
    })
}

/// The partition's last segment: its path, its bytes, and where its last
/// whole record starts and ends.
fn last_segment(partition: &std::path::Path) -> (std::path::PathBuf, Vec<u8>, usize, usize) {
    let mut segments: Vec<_> = std::fs::read_dir(partition)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    let path = segments.pop().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (mut last, mut at) = (0, 0);
    while at + 8 <= bytes.len() {
        let next = at + 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if next > bytes.len() {
            break;
        }
        (last, at) = (at, next);
    }
    (path, bytes, last, at)
}

/// Bytes after the last whole record of the partition's last segment.
fn torn_bytes(partition: &std::path::Path) -> u64 {
    let (_, bytes, _, end) = last_segment(partition);
    (bytes.len() - end) as u64
}

/// Leaves the torn tail a kill inside a record's write leaves: the first
/// half of a record (a copy of the last one's), after the last whole record.
fn tear(partition: &std::path::Path) -> u64 {
    use std::io::Write;
    let (path, bytes, start, end) = last_segment(partition);
    let half = &bytes[start..start + (end - start) / 2];
    std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(half).unwrap();
    half.len() as u64
}

/// The committed time a resumed worker continued from, per worker.
fn resumed_times(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter_map(|line| line.split("resuming from committed time ").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

/// One capture killed and resumed while followed; with `tear`, a kill that
/// left no torn tail is given one by hand. Returns the torn bytes.
fn round(seed: u64, tear_if_none: bool) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let mut capture = Reaped(Some(send(&data, &["--exactly-once", "--rate", RATE]).spawn().unwrap()));
    // Wait for both stream headers: the followers open on them.
    let started = Instant::now();
    while (0..WORKERS).any(|p| {
        std::fs::metadata(dir.path().join(format!("t/{p}/00000000000000000000.log"))).map_or(true, |m| m.len() == 0)
    }) {
        assert!(started.elapsed() < Duration::from_secs(60), "the capture never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let recv = Reaped(Some(
        bin("capture_recv").args(["t", "-w2", "--idle-timeout", "30", "--data-dir", &data]).spawn().unwrap(),
    ));
    let live: Vec<Arc<AtomicU64>> = (0..WORKERS).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let followers: Vec<_> =
        (0..WORKERS).map(|p| follow(dir.path().to_path_buf(), p, live[p as usize].clone())).collect();

    // Kill somewhere after the first commits (a time step takes ~0.67 s)
    // and before the end (~5.3 s).
    let kill_after = Duration::from_millis(1200 + seed % 2800);
    std::thread::sleep(kill_after.saturating_sub(started.elapsed()));
    capture.kill();
    let delivered: Vec<u64> = live.iter().map(|l| l.load(Ordering::Relaxed)).collect();
    let mut torn: Vec<u64> = (0..WORKERS).map(|p| torn_bytes(&dir.path().join(format!("t/{p}")))).collect();
    eprintln!("killed after {kill_after:?}: followers had delivered {delivered:?}; torn tails {torn:?} bytes");
    if tear_if_none && torn.iter().all(|t| *t == 0) {
        torn[0] = tear(&dir.path().join("t/0"));
        eprintln!("the kill landed between writes: tore partition 0's tail by hand ({} bytes)", torn[0]);
    }

    std::thread::sleep(Duration::from_millis(300));
    let resumed = send(&data, &["--resume", "--rate", "4000000"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "resume failed: {stderr}");
    let times = resumed_times(&stderr);
    eprintln!("resumed from committed times {times:?}");
    // Where the kill landed: every worker had committed, none had finished,
    // and the followers were following.
    assert_eq!(times.len(), WORKERS as usize, "{stderr}");
    assert!(times.iter().all(|t| *t > 0 && *t < COUNT / PER_TIME), "{times:?}");
    assert!(delivered.iter().all(|d| *d > 0), "the followers were not live at the kill: {delivered:?}");

    for (p, follower) in followers.into_iter().enumerate() {
        let seen = follower.join().unwrap().unwrap_or_else(|e| panic!("partition {p}'s follower failed: {e}"));
        assert_eq!(seen, common::capture_send_partition(p as u64, WORKERS as u64, COUNT), "partition {p}");
    }
    let output = recv.output();
    assert!(output.status.success(), "capture_recv failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(common::recv_fingerprint(&output.stdout), common::capture_send_numbers(WORKERS as u64, COUNT));
    torn.iter().sum()
}

#[test]
fn a_replay_following_the_capture_stays_exact_across_a_kill_with_a_torn_tail_and_the_resume() {
    let _deadline = common::deadline();
    let seed = std::env::var("EO_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("seed {seed} (EO_SEED={seed} repeats this run)");
    let mut state = seed;
    let mut torn = 0;
    // A kill leaves a torn tail only when it lands inside the write of a
    // record: in CI two kills in a row landed between writes (seed
    // 1796627112391015710, which does so on an idle machine too). The last
    // round then tears its tail by hand, as such a kill would have, so the
    // torn case is always covered.
    for r in 0..ROUNDS {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        eprintln!("round {r}:");
        torn += round(state >> 33, r + 1 == ROUNDS && torn == 0);
    }
    assert!(torn > 0, "no round left a torn tail (seed {seed})");
}
