//! Baseline for the file-backend benchmark: what a user would write *instead of*
//! timely-kafka, using only timely's own `EventWriter` / `EventReader`.
//!
//! ```text
//! timely_baseline send DIR COUNT -w N     each of N workers captures 0..COUNT (u64)
//!                                         into DIR/stream-<worker index>
//! timely_baseline recv DIR STREAMS -w M   worker j replays every DIR/stream-p with
//!                                         p % M == j, counting and summing records
//! ```
//!
//! The workload and the final line mirror `capture_send` / `capture_recv`, so
//! `scripts/bench_file.sh` can compare the two directly:
//!
//! ```text
//! timely_baseline send: records=<n> bytes=<file bytes> seconds=<s> mb_per_s=<x>
//! timely_baseline recv: records=<n> sum=<sum> bytes=<file bytes> seconds=<s> mb_per_s=<x>
//! ```
//!
//! `bytes` is the total size of the stream files (MB = 10^6 bytes). There is no
//! framing, checksumming, partition layout or offset tracking here: this is the
//! floor that timely-kafka's file backend is measured against.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::exit;
use std::rc::Rc;
use std::time::Instant;

use timely::dataflow::operators::capture::{Capture, EventReader, EventWriter, Replay};
use timely::dataflow::operators::{Inspect, Probe};

// The generator `capture_send` captures: the baseline times the same workload.
use timely_kafka_cli::numbers;

const PROGRAM: &str = "timely_baseline";
const USAGE: &str = "usage: timely_baseline send DIR COUNT [-w N]\n       timely_baseline recv DIR STREAMS [-w M]";

fn main() {
    // `cargo bench` runs every bench target with just `--bench`: this one
    // is a baseline program with its own arguments, driven by a script.
    if std::env::args().skip(1).eq(["--bench"]) {
        println!("timely_baseline: a baseline driven by scripts/bench_file.sh; run that script");
        return;
    }
    let mut positional = Vec::new();
    let mut workers = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-w" | "--workers" => workers = parse(args.next().as_deref(), "-w"),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            _ if arg.starts_with("--workers=") => workers = parse(Some(&arg["--workers=".len()..]), "--workers"),
            _ if arg.starts_with("-w") && arg.len() > 2 => workers = parse(Some(&arg[2..]), "-w"),
            _ => positional.push(arg),
        }
    }
    if workers == 0 {
        fail("-w must be at least 1");
    }
    let [command, dir, number] = <[String; 3]>::try_from(positional).unwrap_or_else(|_| fail(USAGE));
    let dir = PathBuf::from(dir);
    match command.as_str() {
        "send" => send(&dir, parse(Some(&number), "COUNT"), workers),
        "recv" => recv(&dir, parse(Some(&number), "STREAMS"), workers),
        _ => fail(USAGE),
    }
}

fn parse<N: std::str::FromStr>(value: Option<&str>, what: &str) -> N {
    match value.map(str::parse) {
        Some(Ok(n)) => n,
        _ => fail(&format!("{what} needs a non-negative integer")),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("{PROGRAM}: error: {message}");
    exit(2)
}

fn config(workers: usize) -> timely::Config {
    if workers == 1 {
        timely::Config::thread()
    } else {
        timely::Config::process(workers)
    }
}

fn stream_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("stream-{index}"))
}

fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / 1e6 / seconds
    } else {
        0.0
    }
}

/// A `Write` that counts what passes through it and flushes its inner writer
/// when dropped, reporting errors (a `BufWriter` silently ignores them on drop).
struct Counted<W: Write> {
    inner: W,
    bytes: u64,
    /// Where to report the byte count once the writer is dropped.
    report: Rc<Cell<Option<u64>>>,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)?;
        self.bytes += buf.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Drop for Counted<W> {
    fn drop(&mut self) {
        if let Err(error) = self.inner.flush() {
            eprintln!("{PROGRAM}: error: flush failed: {error}");
            exit(1);
        }
        self.report.set(Some(self.bytes));
    }
}

fn send(dir: &Path, count: u64, workers: usize) {
    if let Err(error) = std::fs::create_dir_all(dir) {
        fail(&format!("cannot create {}: {error}", dir.display()));
    }
    let started = Instant::now();
    let target = dir.to_path_buf();
    let guards = timely::execute(config(workers), move |worker| {
        let path = stream_path(&target, worker.index());
        let file = File::create(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        let report = Rc::new(Cell::new(None));
        let writer = Counted { inner: BufWriter::with_capacity(1 << 20, file), bytes: 0, report: report.clone() };
        worker.dataflow::<u64, _, _>(|scope| numbers::numbers(scope, count).capture_into(EventWriter::new(writer)));
        // The capture operator, and with it the writer, is dropped once the dataflow completes.
        while worker.step() {}
        let written = report.get().unwrap_or_else(|| panic!("writer for {} was not dropped", path.display()));
        (path, written)
    })
    .unwrap_or_else(|e| fail(&e));
    let mut bytes = 0;
    for result in guards.join() {
        let (path, written) = result.unwrap_or_else(|e| fail(&e));
        let size = std::fs::metadata(&path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display()))).len();
        if size != written {
            fail(&format!("{} holds {size} bytes, but {written} were written", path.display()));
        }
        bytes += size;
    }
    let seconds = started.elapsed().as_secs_f64();
    let records = count * workers as u64;
    println!(
        "{PROGRAM} send: records={records} bytes={bytes} seconds={seconds:.3} mb_per_s={:.1}",
        mb_per_s(bytes, seconds)
    );
}

fn recv(dir: &Path, streams: usize, workers: usize) {
    let mut paths = Vec::with_capacity(streams);
    let mut bytes = 0;
    for index in 0..streams {
        let path = stream_path(dir, index);
        bytes += std::fs::metadata(&path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display()))).len();
        paths.push(path);
    }
    let started = Instant::now();
    let guards = timely::execute(config(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let readers = paths
            .iter()
            .enumerate()
            .filter(|(p, _)| p % peers == index)
            .map(|(_, path)| {
                let file = File::open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
                EventReader::<u64, Vec<u64>, _>::new(file)
            })
            .collect::<Vec<_>>();
        let totals = Rc::new(Cell::new((0u64, 0u64)));
        let seen = totals.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            readers
                .replay_into(scope)
                .inspect_core(move |event| {
                    if let Ok((_, batch)) = event {
                        let (records, sum) = seen.get();
                        let batch_sum = batch.iter().fold(0u64, |s, x| s.wrapping_add(*x));
                        seen.set((records + batch.len() as u64, sum.wrapping_add(batch_sum)));
                    }
                })
                .probe()
                .0
        });
        while !probe.done() {
            worker.step();
        }
        totals.get()
    })
    .unwrap_or_else(|e| fail(&e));
    let (mut records, mut sum) = (0u64, 0u64);
    for result in guards.join() {
        let (r, s) = result.unwrap_or_else(|e| fail(&e));
        records += r;
        sum = sum.wrapping_add(s);
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{PROGRAM} recv: records={records} sum={sum} bytes={bytes} seconds={seconds:.3} mb_per_s={:.1}",
        mb_per_s(bytes, seconds)
    );
}
