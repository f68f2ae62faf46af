//! How a binary ends on an error: one line on stderr, status 1. Only the
//! binaries call it: the library never exits its host process.

use timely_kafka::Result;

/// Library messages name the option that fixes a problem; a user of the
/// binaries needs the flag instead.
const FLAG_FOR_OPTION: [(&str, &str); 2] = [
    ("set the capture's `overwrite` option", "pass --overwrite"),
    ("EventConsumer::skip_type_check or ReplayOptions::skip_type_check", "--skip-type-check"),
];

/// Prints `PROGRAM: error: ERROR` (options named by their flags) and exits 1.
pub fn fail(program: &str, error: impl std::fmt::Display) -> ! {
    let error = FLAG_FOR_OPTION.iter().fold(error.to_string(), |message, (option, flag)| message.replace(option, flag));
    eprintln!("{program}: error: {error}");
    std::process::exit(1);
}

/// The end of a binary's `main`: runs `run`, and ends the process with
/// one line ([`fail`]) on the error it returns or on a worker's failure
/// no one handled ([`timely_kafka::exit_on_unhandled_failure`]).
pub fn run_or_fail(program: &'static str, run: impl FnOnce() -> Result<()>) {
    timely_kafka::exit_on_unhandled_failure(program);
    if let Err(error) = run() {
        fail(program, error);
    }
}
