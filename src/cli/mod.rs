//! What the binaries share: arguments, backend selection, the timely cluster
//! configuration, error reporting, progress display and the numbers stream.
//!
//! The binaries stay thin front-ends; everything they do is library code a
//! user could call. This layer may use every other one; nothing below it
//! knows it exists.

mod args;
pub mod fingerprint;
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

/// Keeps freed heap memory in the process instead of giving it back to the
/// kernel at once (glibc only; elsewhere a no-op).
///
/// Replay allocates and frees a container per event, and librdkafka a fetch
/// buffer of megabytes per fetch. glibc's defaults return the top of a heap
/// once 128 KiB of it are free and serve large blocks with `mmap`, so every
/// such cycle paid `mprotect`/`munmap` and page faults (about 10% of a
/// replay worker's samples under `perf`). With the thresholds below,
/// `capture_recv` of a 400 MB topic on tansu took 0.47 s instead of 0.52
/// (medians of 7, interleaved runs); peak RSS stays bounded by
/// what the process holds at once plus `TRIM_THRESHOLD` per malloc arena.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// Free memory a heap keeps before trimming.
        const TRIM_THRESHOLD: libc::c_int = 64 << 20;
        /// Blocks up to this size come from the heap, not `mmap` (glibc's maximum).
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        // SAFETY: mallopt only sets allocator parameters; called before
        // the program starts its threads.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
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
