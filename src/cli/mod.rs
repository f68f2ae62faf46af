//! What the binaries share: arguments, backend selection, the timely cluster
//! configuration, error reporting, progress display, allocator settings and
//! the numbers stream and its fingerprint.
//!
//! Not library API: compiled only with the cargo feature `cli` (on by
//! default, so `cargo build` builds the binaries), hidden from the docs, and
//! free to change with the binaries. It lives in the library crate only
//! because the binaries are separate crates that need one place to share
//! it; a library user turns it off with `default-features = false`, which
//! also drops clap and indicatif. This layer may use every other one;
//! nothing below it knows it exists.

mod args;
pub mod fingerprint;
mod memory;
pub mod numbers;
mod progress;

pub use args::{CodecArg, LogArgs, TimelyArgs};
pub use memory::keep_freed_memory;
pub use progress::{mb_per_s, sum, Progress, Totals};

/// [`crate::exit_on_unhandled_failure`], under the name the examples still
/// call it by.
pub fn exit_on_panic(program: &'static str) {
    crate::exit_on_unhandled_failure(program);
}
