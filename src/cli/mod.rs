//! What the binaries share: arguments, backend selection, the timely cluster
//! configuration, error reporting, progress display and the numbers stream.
//!
//! The binaries stay thin front-ends; everything they do is library code a
//! user could call. This layer may use every other one; nothing below it
//! knows it exists.

mod args;
pub mod numbers;
mod progress;

use std::time::Duration;

use crate::error::Result;
use crate::log::LogBackend;

pub use args::{CodecArg, LogArgs, TimelyArgs};
pub use progress::{mb_per_s, sum, Progress, Totals};

/// Makes any panic (a failed capture or replay ends its worker with one) a
/// single `PROGRAM: error: MESSAGE` line and exit code 1, without a backtrace.
pub fn exit_on_panic(program: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("worker panicked");
        eprintln!("{program}: error: {message}");
        std::process::exit(1);
    }));
}

/// Prints `PROGRAM: error: ERROR` and exits 1.
pub fn fail(program: &str, error: impl std::fmt::Display) -> ! {
    eprintln!("{program}: error: {error}");
    std::process::exit(1);
}

/// Waits until `topic` exists with at least `partitions` partitions.
pub fn wait_for_topic(log: &dyn LogBackend, topic: &str, partitions: u32, timeout: Duration) -> Result<()> {
    crate::capture::worker::wait_for_topic(log, topic, partitions, timeout)
}
