//! The proof of the exactly-once pipeline, on Apache Kafka (set
//! `KAFKA_BROKERS`; skipped with a printed line otherwise).
//!
//! kafka-python (an independent client: tests/interop/chaos_words.py) writes
//! unique lines continuously in small batches while `word_count
//! --exactly-once --live --idle-exit 8 -w N` (N = 1, 2, 3 by turns: the
//! pipeline's identity must not depend on it) is SIGKILLed at
//! `CHAOS_KILLS` (default 20) random moments (random run times, so some
//! land during start-up, fencing or the progress read, others mid-commit)
//! and started again each time with the same arguments; first, twice, an
//! instance is SIGSTOPped while a new one takes over, then SIGCONTed while
//! the writer still writes (asserted: woken to no new input, a zombie has
//! nothing to commit and never meets the coordinator): that zombie must
//! be fenced (it ends with an error saying so) and write nothing. Finally
//! the pipeline runs to its end, and kafka-python reads the output with
//! read_committed: each word's counts strictly increase, no (word, count)
//! repeats, the last count equals the word's occurrences in the input.
//!
//! Both run on the path of declared state (the counts and the running
//! totals are restored from their changelogs; the crash point
//! `during-restore` replaces `during-replay`); `word_count --replay` runs
//! the same schedule on the path that replays the input instead.
//!
//! The same schedule runs `average_temp --exactly-once --output`: kafka-python
//! writes readings with increasing timestamps per partition
//! (tests/interop/chaos_temps.py), and the output must hold every
//! one-second bucket exactly once with the input's count and average.
//!
//! Before the random kills, one instance per named crash point
//! (`TIMELY_KAFKA_CRASH_AT`, `PipelineConfig::crash_at`) aborts there:
//! after fencing, after the probe, during the replay of committed input,
//! with a commit's records delivered but `commit_transaction` not called,
//! and right after a commit. Each must be reached (its line on stderr, the
//! process aborted), and the output stays exact.
//!
//! `word_count` also runs as a cluster of two processes (one worker each):
//! twice one of the pair is SIGKILLed, and once a partition is added to the
//! input, which fails a source in one of them — both must end with an
//! error line, and worker 0's sink must stop committing.
//!
//! The seed is printed; `CHAOS_SEED=<seed>` replays the same schedule.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Replaced by each instance's worker count.
const WORKERS: &str = "WORKERS";
const ZOMBIES: usize = 2;
/// Every crash point of a pipeline that replays its input, in an order in
/// which each is reached: the commits of `before-commit` and `after-commit`
/// give `during-replay` committed input to replay.
const REPLAY_CRASH_POINTS: &[&str] = &["after-fence", "after-probe", "before-commit", "after-commit", "during-replay"];
/// The same for a pipeline with declared state: it replays nothing, and
/// `during-restore` (the first changelog record read) has committed state
/// to restore.
const STATE_CRASH_POINTS: &[&str] = &["after-fence", "after-probe", "before-commit", "after-commit", "during-restore"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv with kafka-python that scripts/interop.sh uses (created if missing).
fn python() -> PathBuf {
    let venv = root().join("target/interop-venv");
    let python = venv.join("bin/python");
    let ready = |python: &Path| Command::new(python).args(["-c", "import kafka"]).status().is_ok_and(|s| s.success());
    if !ready(&python) {
        let created = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().unwrap();
        assert!(created.success(), "python3 -m venv failed");
        let pip = Command::new(venv.join("bin/pip")).args(["install", "--quiet", "kafka-python"]).status().unwrap();
        assert!(pip.success(), "pip install kafka-python failed");
    }
    python
}

fn interop(python: &Path, script: &str, args: &[&str]) -> Command {
    let mut command = Command::new(python);
    command.arg(root().join("tests/interop").join(script)).args(args);
    command
}

fn build_example(name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo).current_dir(root()).args(["build", "--quiet", "--example", name]).status();
    assert!(built.unwrap().success(), "cargo build --example {name} failed");
    target_dir().join("debug/examples").join(name)
}

/// Where cargo builds: `CARGO_TARGET_DIR` if set (it was ignored: the test
/// ran no binary when the target directory was elsewhere).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// One running instance of the pipeline, its output in files.
struct Instance {
    child: Child,
    name: String,
    stderr: PathBuf,
    started: Instant,
}

impl Instance {
    /// Starts instance `n`; its worker count is 1, 2 or 3 by turns (the
    /// pipeline's identity must not depend on it).
    fn start(binary: &Path, args: &[String], dir: &Path, n: usize, crash_at: Option<&str>) -> Instance {
        let name = format!("instance-{n}");
        let stderr = dir.join(format!("{name}.err"));
        let workers = (n % 3 + 1).to_string();
        let mut command = Command::new(binary);
        if let Some(point) = crash_at {
            command.env("TIMELY_KAFKA_CRASH_AT", point);
        }
        let child = command
            .args(args.iter().map(|a| if a == "WORKERS" { &workers } else { a }))
            .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Instance { child, name, stderr, started: Instant::now() }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: signals a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0, "kill {}", self.name);
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Whether it had got past start-up (fenced, read the progress).
    fn resumed(&self) -> bool {
        self.stderr().contains("resuming after commit")
    }

    /// Waits for it to exit, at most `limit`; its status.
    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not exit within {limit:?}; stderr: {}", self.name, self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits at most `limit` for it to exit, then kills it; what happened.
    fn wait_or_kill(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return format!("ended with {status}: {}", self.stderr().lines().last().unwrap_or(""));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!("was still running after {limit:?} and was killed")
    }

    fn kill(mut self) -> bool {
        let resumed = self.resumed();
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
        resumed
    }
}

/// The input's writer, stopped if the test fails before it ends.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A test that fails leaves no pipeline running behind it.
impl Drop for Instance {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Instances `n` and `n + 1`: the two processes of one timely cluster
/// (`-n 2 -p 0|1 --hostfile`, one worker each, ports chosen free now).
fn start_pair(binary: &Path, args: &[String], dir: &Path, n: usize) -> [Instance; 2] {
    // Both listeners held until both ports are known: two distinct ports.
    let listeners: Vec<_> = (0..2).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
    drop(listeners);
    let hostfile = dir.join("hosts");
    std::fs::write(&hostfile, format!("127.0.0.1:{}\n127.0.0.1:{}\n", ports[0], ports[1])).unwrap();
    let hosts = hostfile.to_str().unwrap().to_string();
    [0, 1].map(|process| {
        let mut cluster: Vec<String> =
            args.iter().map(|a| if a == WORKERS { "1".to_string() } else { a.clone() }).collect();
        cluster.extend(["-n", "2", "-p", &process.to_string(), "--hostfile", &hosts].map(String::from));
        Instance::start(binary, &cluster, dir, n + process, None)
    })
}

/// A source failure in a cluster of two processes: once both run, a
/// partition is added to the input, which every exactly-once source
/// refuses at its next partition check (10 s) rather than leave it
/// unread. Whichever process's source fails first, worker 0's sink (in
/// process 0) must stop committing and say so, and both processes must end
/// with an error line within 60 s — neither may go on alone or hang. The
/// next start reads the new partition too (the final check covers it).
#[allow(clippy::too_many_arguments)]
fn source_failure_round(
    binary: &Path,
    args: &[String],
    dir: &Path,
    next: usize,
    brokers: &str,
    input: &str,
    partitions: u32,
    rng: &mut StdRng,
) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
    use rdkafka::client::DefaultClientContext;
    let [mut first, mut second] = start_pair(binary, args, dir, next);
    let running_by = Instant::now() + Duration::from_secs(60);
    // Worker 0 (process 0) says it resumed once every worker has started.
    while !first.resumed() && Instant::now() < running_by {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(first.resumed(), "the pair did not start within 60 s: {} / {}", first.stderr(), second.stderr());
    std::thread::sleep(Duration::from_millis(rng.random_range(200..3000)));
    let admin: AdminClient<DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    let added = futures_executor::block_on(
        admin.create_partitions(&[NewPartitions::new(input, partitions as usize + 1)], &AdminOptions::new()),
    );
    assert!(added.unwrap().iter().all(Result::is_ok), "adding a partition to {input} failed");
    let added_at = Instant::now();
    let (first_status, second_status) = (first.wait(Duration::from_secs(60)), second.wait(Duration::from_secs(60)));
    let ended_after = added_at.elapsed();
    let (sink, other) = (first.stderr(), second.stderr());
    let last = |stderr: &str| stderr.lines().last().unwrap_or("").to_string();
    println!(
        "pipeline_chaos: two processes, a partition added: both ended within {ended_after:?} ({first_status}, \
         {second_status}): '{}' / '{}'",
        last(&sink),
        last(&other)
    );
    assert!(!first_status.success() && !second_status.success(), "a process ended successfully: {sink} / {other}");
    for stderr in [&sink, &other] {
        assert!(last(stderr).contains(": error: "), "no error line at the end: {stderr}");
    }
    assert!(
        [&sink, &other].iter().any(|stderr| stderr.contains("partitions were added while the pipeline ran")),
        "no source reported the added partition: {sink} / {other}"
    );
    assert!(sink.contains("nothing is committed after frontier"), "worker 0's sink did not stop its commits: {sink}");
}

/// The commit an instance resumed after, from its start-up line.
fn resumed_commit(stderr: &str) -> Option<u64> {
    let line = stderr.lines().find(|l| l.contains("resuming after commit"))?;
    line.split_whitespace().skip_while(|w| *w != "commit").nth(1)?.parse().ok()
}

/// One chaos run: an example, its arguments, its independent writer and checker.
struct Scenario {
    example: &'static str,
    script: &'static str,
    input_partitions: u32,
    /// The example's arguments after `--brokers B`; INPUT and OUTPUT are replaced.
    args: &'static [&'static str],
    /// The writer's records, batch size and pause (ms); its seed is the run's.
    produce: [u64; 3],
    /// The checker's arguments after `check BROKERS INPUT OUTPUT`.
    check: &'static [&'static str],
    /// What the check's report must say about the input.
    input_report: String,
    /// Whether the example runs as a timely cluster (`-n 2 -p I --hostfile`).
    processes: bool,
    /// The named crash points, in an order in which each is reached.
    crash_points: &'static [&'static str],
}

fn chaos(scenario: Scenario) {
    let Ok(brokers) = std::env::var("KAFKA_BROKERS") else {
        println!("pipeline_chaos: skipped (set KAFKA_BROKERS to an Apache Kafka with transactions)");
        return;
    };
    let _deadline = common::deadline();
    let seed: u64 = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    let kills: usize = std::env::var("CHAOS_KILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let example = scenario.example;
    println!("pipeline_chaos {example}: seed {seed} (CHAOS_SEED={seed} replays it), {kills} kills, {ZOMBIES} zombies");
    let mut rng = StdRng::seed_from_u64(seed);
    let binary = build_example(example);
    let python = python();
    std::fs::create_dir_all(target_dir()).unwrap();
    let dir = tempfile::tempdir_in(target_dir()).unwrap();
    let run = format!("chaos-{example}-{}-{seed}", std::process::id());
    let (input, output) = (format!("{run}-in"), format!("{run}-out"));
    let partitions = scenario.input_partitions.to_string();
    let topics = interop(&python, "chaos_words.py", &["topics", &brokers, &input, &output, &partitions]).status();
    assert!(topics.unwrap().success(), "creating the topics failed");
    let mut args = vec!["--brokers".to_string(), brokers.clone()];
    args.extend(scenario.args.iter().map(|a| a.replace("INPUT", &input).replace("OUTPUT", &output)));

    let writer_args: Vec<String> = scenario.produce.iter().chain([&seed]).map(u64::to_string).collect();
    let mut produce = vec!["produce", brokers.as_str(), input.as_str()];
    produce.extend(writer_args.iter().map(String::as_str));
    let mut writer = Writer(interop(&python, scenario.script, &produce).stdout(Stdio::null()).spawn().unwrap());

    let start = |n: usize| Instance::start(&binary, &args, dir.path(), n, None);
    let mut landed_after_start_up = 0;
    let mut commits_seen = Vec::new();
    let mut next = 0;
    // The zombie take-overs first, while the writer is surely still writing:
    // a zombie that wakes to no new input has nothing to commit, never
    // meets the coordinator, and ends with nothing to say (it happened once
    // the writer had finished, on a machine slowed down by other work).
    let mut current = start(next);
    for _ in 0..ZOMBIES {
        // Freeze it once it runs (frozen before its own fencing, it would
        // fence its successor on waking: no zombie), let a new instance
        // take over, then wake it up.
        let running_by = Instant::now() + Duration::from_secs(60);
        while !current.resumed() && Instant::now() < running_by {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(current.resumed(), "{} did not start within 60 s: {}", current.name, current.stderr());
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1000)));
        current.signal(libc::SIGSTOP);
        let stopped_after = current.started.elapsed();
        next += 1;
        let successor = start(next);
        std::thread::sleep(Duration::from_millis(rng.random_range(1500..4000)));
        let mut zombie = std::mem::replace(&mut current, successor);
        let writing = matches!(writer.0.try_wait(), Ok(None));
        assert!(writing, "the writer had finished before zombie {} woke: it has nothing to commit", zombie.name);
        zombie.signal(libc::SIGCONT);
        let status = zombie.wait(Duration::from_secs(60));
        let stderr = zombie.stderr();
        println!(
            "pipeline_chaos {example}: zombie {} (stopped {stopped_after:?} after start, woken while the writer \
             wrote) ended with {status}: {}",
            zombie.name,
            stderr.lines().last().unwrap_or("")
        );
        assert!(!status.success(), "zombie {} ended successfully: {stderr}", zombie.name);
        assert!(stderr.contains("fenced"), "zombie {} failed without being fenced: {stderr}", zombie.name);
        commits_seen.extend(resumed_commit(&stderr));
        std::thread::sleep(Duration::from_millis(rng.random_range(100..2000)));
    }
    commits_seen.extend(resumed_commit(&current.stderr()));
    landed_after_start_up += usize::from(current.kill());
    next += 1;
    for &point in scenario.crash_points {
        let mut crashing = Instance::start(&binary, &args, dir.path(), next, Some(point));
        next += 1;
        let status = crashing.wait(Duration::from_secs(120));
        let stderr = crashing.stderr();
        let reached = format!("crash point '{point}' reached");
        println!("pipeline_chaos {example}: {}: {point}: ended with {status}", crashing.name);
        assert!(!status.success() && stderr.contains(&reached), "{point} was not reached: {status}: {stderr}");
        commits_seen.extend(resumed_commit(&stderr));
    }
    if scenario.processes {
        // Two rounds as a cluster of two processes (one worker each): once
        // both run, one of them is SIGKILLed (each in turn); the other must
        // end within 60 s (it cannot go on alone) and is killed otherwise.
        for round in 0..2 {
            let (pair, hostfile) = (start_pair(&binary, &args, dir.path(), next), dir.path().join("hosts"));
            next += 2;
            let [mut first, mut second] = pair;
            let running_by = Instant::now() + Duration::from_secs(60);
            while !first.resumed() && Instant::now() < running_by {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(first.resumed(), "process 0 did not start within 60 s: {}", first.stderr());
            std::thread::sleep(Duration::from_millis(rng.random_range(200..3000)));
            if round == 1 {
                std::mem::swap(&mut first, &mut second);
            }
            commits_seen.extend(resumed_commit(&first.stderr()).into_iter().chain(resumed_commit(&second.stderr())));
            let killed = first.name.clone();
            first.kill();
            let ended = second.wait_or_kill(Duration::from_secs(60));
            println!(
                "pipeline_chaos {example}: two processes ({}): SIGKILL {killed}; the other {ended}",
                hostfile.display()
            );
            // It cannot go on alone: it ends by itself, with a failure (timely's
            // communication thread panics when its peer's connection closes).
            assert!(
                ended.starts_with("ended with exit status: ") && !ended.starts_with("ended with exit status: 0"),
                "the survivor of SIGKILL {killed} did not end by itself with a failure: {ended}"
            );
        }
        source_failure_round(&binary, &args, dir.path(), next, &brokers, &input, scenario.input_partitions, &mut rng);
        next += 2;
    }
    let mut current = start(next);
    for kill in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.random_range(100..3000)));
        let ran = current.started.elapsed();
        let name = current.name.clone();
        commits_seen.extend(resumed_commit(&current.stderr()));
        let resumed = current.kill();
        landed_after_start_up += usize::from(resumed);
        let when = if resumed { "running" } else { "during start-up" };
        println!("pipeline_chaos {example}: kill {kill}: SIGKILL {name} after {ran:?} ({when})");
        next += 1;
        current = start(next);
    }
    let written = writer.0.wait().unwrap();
    assert!(written.success(), "the kafka-python writer failed");
    // Run to the end: idle for 8 s after the last record, then the last commit.
    let status = current.wait(Duration::from_secs(150));
    let stderr = current.stderr();
    assert!(status.success(), "the final run failed: {stderr}");
    let last = resumed_commit(&stderr).expect("the final run resumed");
    commits_seen.push(last);
    println!(
        "pipeline_chaos {example}: {kills} kills ({landed_after_start_up} after start-up), final run resumed after \
         commit {last}; commits at each restart: {commits_seen:?}"
    );
    assert!(landed_after_start_up > 0, "every kill landed during start-up: the schedule tested nothing");
    assert!(commits_seen.windows(2).all(|w| w[0] <= w[1]), "a restart resumed from an older commit: {commits_seen:?}");
    assert!(last > 0, "nothing was committed before the final run");

    let mut check = vec!["check", brokers.as_str(), input.as_str(), output.as_str()];
    check.extend(scenario.check);
    let checked = interop(&python, scenario.script, &check).output().unwrap();
    let report = String::from_utf8_lossy(&checked.stdout);
    println!("pipeline_chaos {example}: {report}");
    assert!(checked.status.success(), "the output is not exact: {}", String::from_utf8_lossy(&checked.stderr));
    assert!(report.contains(&scenario.input_report), "the input is not what was written: {report}");
}

#[test]
fn word_count_exactly_once_survives_kills_and_zombies() {
    const LINES: u64 = 6000;
    chaos(Scenario {
        example: "word_count",
        script: "chaos_words.py",
        input_partitions: 2,
        args: &[
            "--input",
            "INPUT",
            "--output",
            "OUTPUT",
            "--exactly-once",
            "--live",
            "--idle-exit",
            "8",
            "-w",
            WORKERS,
            "--interval-ms",
            "200",
            "--commit-interval-ms",
            "100",
        ],
        produce: [LINES, 20, 150],
        check: &[],
        input_report: format!("lines={LINES}"),
        processes: true,
        crash_points: STATE_CRASH_POINTS,
    });
}

/// The same on the path of a pipeline without declared state: each start
/// replays the input from its beginning (`--replay`).
#[test]
fn word_count_replaying_its_input_survives_kills_and_zombies() {
    const LINES: u64 = 3000;
    chaos(Scenario {
        example: "word_count",
        script: "chaos_words.py",
        input_partitions: 2,
        args: &[
            "--input",
            "INPUT",
            "--output",
            "OUTPUT",
            "--exactly-once",
            "--replay",
            "--live",
            "--idle-exit",
            "8",
            "-w",
            WORKERS,
            "--interval-ms",
            "200",
            "--commit-interval-ms",
            "100",
        ],
        produce: [LINES, 20, 150],
        check: &[],
        input_report: format!("lines={LINES}"),
        processes: false,
        crash_points: REPLAY_CRASH_POINTS,
    });
}

#[test]
fn average_temp_exactly_once_survives_kills_and_zombies() {
    const READINGS: u64 = 9000;
    chaos(Scenario {
        example: "average_temp",
        script: "chaos_temps.py",
        input_partitions: 3,
        args: &[
            "--topic",
            "INPUT",
            "--output",
            "OUTPUT",
            "--exactly-once",
            "--live",
            "--idle-exit",
            "8",
            "-w",
            WORKERS,
        ],
        produce: [READINGS, 30, 150],
        check: &["1000"],
        input_report: format!("readings={READINGS}"),
        processes: false,
        crash_points: STATE_CRASH_POINTS,
    });
}

#[test]
fn a_transaction_timeout_above_the_broker_maximum_is_refused_at_start() {
    let Ok(brokers) = std::env::var("KAFKA_BROKERS") else {
        println!("pipeline_chaos: skipped (set KAFKA_BROKERS to an Apache Kafka with transactions)");
        return;
    };
    use timely_kafka::connect::transactional::{self, PipelineConfig};
    use timely_kafka::log::{kafka::KafkaLog, LogBackend};
    let _deadline = common::deadline();
    let log = KafkaLog::new(&brokers, &[]).unwrap();
    let topic = format!("chaos-timeout-{}", std::process::id());
    for name in [&topic, &format!("{topic}-out")] {
        log.create_topic(name, 1, false).unwrap();
    }
    let mut config = PipelineConfig::new(log, &topic, &format!("{topic}-out"));
    // Kafka's default transaction.max.timeout.ms is 15 minutes.
    config.transaction_timeout = Duration::from_secs(16 * 60);
    let result =
        timely_kafka::execute(timely::Config::process(2), move |w| transactional::open(w, &config).map(|_| ()));
    let message = result.unwrap_err().to_string();
    println!("pipeline_chaos: {message}");
    assert!(message.contains("transaction.max.timeout.ms"), "{message}");
    assert!(!message.contains('\n'));
}

#[test]
fn retention_past_the_binding_is_a_hard_error() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    use timely::dataflow::operators::vec::Map;
    use timely_kafka::connect::source::{KafkaSource, SourceConfig, SourceEnd};
    use timely_kafka::connect::transactional::{self, PipelineConfig};
    use timely_kafka::log::{kafka::KafkaLog, LogBackend};

    let Ok(brokers) = std::env::var("KAFKA_BROKERS") else {
        println!("pipeline_chaos: skipped (set KAFKA_BROKERS to an Apache Kafka with transactions)");
        return;
    };
    let _deadline = common::deadline();
    let log = KafkaLog::new(&brokers, &[]).unwrap();
    let input = format!("chaos-retention-{}", std::process::id());
    let output = format!("{input}-out");
    for name in [&input, &output] {
        log.create_topic(name, 1, false).unwrap();
    }
    // Recent timestamps: the broker's time-based retention must not be what deletes them.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    common::records::produce(&brokers, &input, 1, 100, now_ms);
    let copy = |log: KafkaLog, input: String, output: String| {
        timely_kafka::execute(timely::Config::process(2), move |w| {
            let pipeline = transactional::open(w, &PipelineConfig::new(log.clone(), &input, &output))?;
            let source = SourceConfig::new(log.clone()).end(SourceEnd::CurrentEnd);
            let handle = w.dataflow::<u64, _, _>(|scope| {
                let resume = pipeline.source_resume();
                let (values, binding, _) = scope.kafka_source_exactly_once(source, &input, resume, |r| {
                    common::records::parse(r).map(|v| (r.offset, v))
                });
                pipeline.sink(values.map(|v| (v.to_string(), v.to_string())), binding)
            });
            while w.step_or_park(Some(Duration::from_millis(5))) {}
            Ok(handle.stats().written)
        })
    };
    let written: u64 = copy(log.clone(), input.clone(), output.clone()).unwrap().into_iter().sum();
    assert_eq!(written, 100);
    // Retention (here: DeleteRecords) removes offsets the state needs.
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let mut below = TopicPartitionList::new();
    below.add_partition_offset(&input, 0, Offset::Offset(50)).unwrap();
    futures_executor::block_on(admin.delete_records(&below, &AdminOptions::new())).unwrap();
    let message = copy(log, input, output).unwrap_err().to_string();
    println!("pipeline_chaos: {message}");
    assert!(message.contains("retention") && message.contains("partition 0"), "{message}");
    assert!(!message.contains('\n'));
}
