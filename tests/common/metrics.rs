//! Scraping a program's `--metrics-addr` while it runs: the binaries'
//! test (cli/tests/metrics.rs) and the pipeline's (tests/pipeline_metrics.rs)
//! both start a child process and scrape it until a condition holds, so
//! the waiting, its bound and its failure messages live here once.

use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

use timely_kafka_cli::scrape::{scrape, sum};

/// A child process, killed when the test ends (however it ends).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Scrapes `addr` until `done` holds for the text (or panics after
/// `within`, or if the program exited before); returns that text.
pub fn scrape_until(
    program: &mut Running,
    addr: SocketAddr,
    what: &str,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = scrape(addr) {
            if done(&text) {
                return text;
            }
        }
        if let Some(status) = program.0.try_wait().unwrap() {
            panic!("the program exited ({status}) before {what}");
        }
        assert!(started.elapsed() < within, "no scrape of {addr} showed {what} within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sum of `name`'s samples in a scrape, 0 if it has none.
pub fn value(text: &str, name: &str) -> f64 {
    sum(text, name, &[]).unwrap_or(0.0)
}
