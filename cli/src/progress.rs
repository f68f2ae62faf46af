//! The progress bar on a terminal and the figures of the final line.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Live totals for the progress display: (records, bytes) summed over sources.
pub type Totals = Arc<Mutex<Vec<Box<dyn Fn() -> (u64, u64) + Send>>>>;

/// A progress bar on stderr while `run` is busy, when stderr is a terminal.
pub struct Progress {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Starts showing `totals` (records out of `expected`, if known).
    pub fn start(totals: Totals, expected: Option<u64>) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Progress { stop, thread: None };
        }
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let bar = match expected {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let template = if expected.is_some() {
                "{elapsed_precise} [{bar:30}] {pos}/{len} records {msg}"
            } else {
                "{elapsed_precise} {spinner} {pos} records {msg}"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            let started = Instant::now();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let (records, bytes) = sum(&totals);
                bar.set_position(records);
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("{:.1} MB, {:.1} MB/s", bytes as f64 / 1e6, bytes as f64 / 1e6 / secs));
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        Progress { stop, thread: Some(thread) }
    }

    /// Stops and clears the bar.
    pub fn finish(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sums the live totals.
pub fn sum(totals: &Totals) -> (u64, u64) {
    let sources = totals.lock().unwrap_or_else(|p| p.into_inner());
    sources.iter().map(|f| f()).fold((0, 0), |(r, b), (r2, b2)| (r + r2, b + b2))
}

/// The final machine-readable line's throughput figure: 10^6 bytes per second.
pub fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / 1e6 / seconds
    } else {
        0.0
    }
}
