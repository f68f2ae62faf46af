//! What the binaries share: arguments, backend selection, the timely cluster
//! configuration, error reporting, progress display, allocator settings and
//! the numbers stream and its fingerprint.
//!
//! A crate of its own (a workspace member depending on the library), so the
//! library has no command-line dependencies (clap, indicatif) and nothing
//! in it exists only for the binaries. The library's examples and tests use
//! [`numbers`] and [`fingerprint`] too (a dev-dependency): the same stream
//! and the same checks as `capture_send` and `capture_recv`.

mod args;
mod fail;
pub mod fingerprint;
mod memory;
pub mod numbers;
mod progress;
pub mod scrape;
pub mod times;

pub use args::{CodecArg, LogArgs, MetricsArgs, TimelyArgs};
pub use fail::{fail, run_or_fail};
pub use memory::keep_freed_memory;
pub use progress::{mb_per_s, sum, Progress, Totals};
