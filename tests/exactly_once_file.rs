//! Exactly-once capture on the file log: crashes at many points, resumes,
//! and replays that equal an uninterrupted capture record for record.

mod common;
mod eo;
mod memory_log;

use std::sync::Arc;

use timely_kafka::log::file::FileLog;
use timely_kafka::log::LogBackend;

fn file_log() -> (tempfile::TempDir, Arc<dyn LogBackend>) {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn LogBackend> = Arc::new(FileLog::new(dir.path()));
    (dir, log)
}

#[test]
fn an_uninterrupted_exactly_once_capture_replays_exactly() {
    let _deadline = common::deadline();
    let (_dir, log) = file_log();
    let spec = eo::spec(20_000, 100);
    eo::capture_crashing(log.clone(), "t", spec, vec![None, None, None]);
    for workers in [1, 2, 4] {
        assert_eq!(eo::replay(log.clone(), "t", 3, workers), eo::expected(spec, 3), "{workers} replay workers");
    }
}

#[test]
fn crashes_at_random_points_then_resume_replay_exactly() {
    let _deadline = common::deadline();
    let spec = eo::spec(5_000, 37);
    let mut seed = 0x5eed_u64;
    for round in 0..20 {
        let (_dir, log) = file_log();
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        // Crash points across the whole stream (~300 records per partition),
        // including before the first commit and right at the start.
        let crash = |shift: u32| Some((seed >> shift) % 320);
        eo::capture_crashing(log.clone(), "t", spec, vec![crash(10), crash(30)]);
        let points = eo::resume_capture(log.clone(), "t", spec, 2);
        assert!(points.is_ok(), "round {round}: {points:?}");
        let workers = 1 + round % 3;
        let expected = eo::expected(spec, 2);
        assert_eq!(eo::replay(log.clone(), "t", 2, workers), expected, "round {round}, {workers} workers");
        // Again, re-reading every delivery from the log instead of memory.
        assert_eq!(eo::replay_with_window(log.clone(), "t", 2, workers, 0), expected, "round {round}, re-read");
    }
}

#[test]
fn records_lost_after_the_last_commit_break_the_epoch_and_a_resume_continues() {
    let _deadline = common::deadline();
    let (_dir, log) = file_log();
    let spec = eo::spec(5_000, 37);
    // Partition 0 loses record 60 (the capture "completes", but its stream
    // has a gap); partition 1 dies at record 50.
    eo::capture_losing(log.clone(), "t", spec, vec![None, Some(50)], vec![Some(60), None]);
    let points = eo::resume_capture(log.clone(), "t", spec, 2).unwrap();
    assert!(points.len() == 2 && points.iter().all(|p| p.previous_epochs == 1), "{points:?}");
    for workers in [1, 2, 3] {
        assert_eq!(eo::replay(log.clone(), "t", 2, workers), eo::expected(spec, 2), "{workers} workers");
    }
}

/// Records cross workers before the capture (an exchange by key); each
/// partition crashes at a different point, some before their first commit,
/// one not at all (its stream completes, and its peers' restarted inputs
/// still route records to it). The replay equals an uninterrupted run.
#[test]
fn a_resume_after_an_exchange_before_the_capture_replays_exactly() {
    let _deadline = common::deadline();
    let crashes = [vec![Some(40), Some(300), None], vec![None, Some(3), Some(150)], vec![Some(220), Some(0), Some(90)]];
    for crash_after in crashes {
        let (_dir, log) = file_log();
        eo::exchange_crash_and_resume(log, "t", crash_after);
    }
}

/// The same crashes and resumes on a backend written from the log traits
/// alone (no hooks: no commit durability, no acknowledgement checks): the
/// stream protocol's commits and epochs are what make it exact.
#[test]
fn a_resume_after_an_exchange_replays_exactly_on_a_memory_log() {
    let _deadline = common::deadline();
    let crashes = [vec![Some(40), Some(300), None], vec![Some(220), Some(0), Some(90)]];
    for crash_after in crashes {
        let log: Arc<dyn LogBackend> = Arc::new(memory_log::MemoryLog::default());
        eo::exchange_crash_and_resume(log, "t", crash_after);
    }
}

/// A stream whose epoch broke (a record lost after the last commit) while
/// a writer keeps appending records replay ignores: the replay fails once
/// it has delivered nothing for its idle timeout, naming the gap, instead
/// of waiting as long as bytes keep arriving.
#[test]
fn a_replay_of_a_broken_epoch_times_out_while_ignored_records_keep_arriving() {
    let _deadline = common::deadline();
    let (_dir, log) = file_log();
    // Rate-limited, so the frontier usually moves (and commits land)
    // before the lost record.
    let spec = timely_kafka_cli::numbers::Numbers { rate: Some(40_000), ..eo::spec(2_000, 37) };
    eo::capture_losing(log.clone(), "t", spec, vec![None], vec![Some(40)]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = eo::keep_writing_ignored_records(log.clone(), "t", 0, stop.clone());
    let outcome = eo::replay_until_done_or(
        log.as_ref(),
        "t",
        0,
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(20),
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    let error = outcome.unwrap().expect("the replay of a broken epoch fails");
    assert!(error.contains("incomplete") && error.contains("gap at offset"), "{error}");
    assert!(written > 10, "the ignored writer wrote {written} records while the replay waited");
}
