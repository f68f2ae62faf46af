//! Transactions stay inside `transaction.timeout.ms`, and the two ways a
//! writer loses its transaction read differently. On Apache Kafka
//! (`KAFKA_BROKERS`):
//! - a newer instance starts while an older one waits in its dataflow: the
//!   older one's commit fails "fenced by a newer instance";
//! - the only worker stalls (20 s in the source's logic) while a
//!   transaction holding early outputs is open, past a 6 s
//!   `transaction.timeout.ms`: the broker aborts it, and the failure says
//!   so, naming `transaction.timeout.ms` — not "fenced by a newer instance"
//!   (librdkafka reports both as `__FENCED`);
//!
//! and a restart after either ends exact. Without Kafka: a `timeout` not
//! below `transaction.timeout.ms` and client properties the pipeline sets
//! itself are refused at start in one line naming them.

mod common;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::records::{expected, parse, produce, read_all};
use timely::dataflow::operators::vec::Map;
use timely_kafka::connect::source::{KafkaSource, SourceConfig, SourceEnd};
use timely_kafka::connect::transactional::{self, PipelineConfig};
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;
use timely_kafka::{execute, Result};

const COUNT: u64 = 1_000;

fn brokers() -> Option<String> {
    let brokers = std::env::var("KAFKA_BROKERS").ok().filter(|b| !b.is_empty());
    if brokers.is_none() {
        println!("pipeline_timeouts: skipped (set KAFKA_BROKERS to an Apache Kafka with transactions)");
    }
    brokers
}

/// Fresh input (1 partition, `COUNT` numbers) and output (1 partition) topics.
fn topics(brokers: &str, name: &str) -> (String, String) {
    let run = format!("timeouts-{name}-{}-{}", std::process::id(), rand::random::<u32>());
    let (input, output) = (format!("{run}-in"), format!("{run}-out"));
    let log = KafkaLog::new(brokers, &[]).unwrap();
    log.create_topic(&input, 1, false).unwrap();
    log.create_topic(&output, 1, false).unwrap();
    produce(brokers, &input, 1, COUNT, 1_000_000);
    (input, output)
}

/// The pipeline's configuration: `transaction.timeout.ms` of `seconds`.
fn config(log: KafkaLog, input: &str, output: &str, seconds: u64) -> PipelineConfig {
    let mut config = PipelineConfig::new(log, input, output).commit_interval(Duration::from_millis(1));
    config.transaction_timeout = Duration::from_secs(seconds);
    config.timeout = Duration::from_secs(2);
    config
}

/// Copies `input` to `output` exactly once with one worker, every record
/// at time 0 (one commit at the end, outputs sent early), reading 50
/// records at a time, with `transaction.timeout.ms` of `seconds`; `hook`
/// runs before each record, with its offset.
fn copy(
    brokers: &str,
    input: &str,
    output: &str,
    seconds: u64,
    hook: impl Fn(u64) + Send + Sync + 'static,
) -> Result<u64> {
    let (brokers, input, output) = (brokers.to_string(), input.to_string(), output.to_string());
    let hook = Arc::new(hook);
    let written = execute(timely::Config::process(1), move |w| {
        let log = KafkaLog::new(&brokers, &[])?;
        let pipeline = transactional::open(w, &config(log.clone(), &input, &output, seconds))?;
        let mut source = SourceConfig::new(log).end(SourceEnd::CurrentEnd);
        source.batch = 50;
        let hook = hook.clone();
        let handle = w.dataflow::<u64, _, _>(|scope| {
            let resume = pipeline.source_resume();
            let (values, binding, _) = scope.kafka_source_exactly_once(source, &input, resume, move |r| {
                hook(r.offset);
                parse(r).map(|v| (0, v))
            });
            pipeline.sink(values.map(|v| (v.to_string(), v.to_string())), binding)
        });
        while w.step_or_park(Some(Duration::from_millis(5))) {}
        if let Some(error) = handle.error() {
            return Err(error);
        }
        Ok(handle.stats().written)
    })?;
    Ok(written.into_iter().sum())
}

#[test]
fn a_zombie_fails_naming_the_newer_instance() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "zombie");
    // 0: not yet; 1: the older instance waits in its dataflow; 2: the newer one has started.
    let stage = Arc::new(AtomicU8::new(0));
    let older = {
        let (brokers, input, output, stage) = (brokers.clone(), input.clone(), output.clone(), stage.clone());
        std::thread::spawn(move || {
            // 30 s: the wait, however long the newer start takes, is no timeout.
            copy(&brokers, &input, &output, 30, move |offset| {
                if offset == 100 {
                    stage.store(1, Ordering::SeqCst);
                    let bound = Instant::now() + Duration::from_secs(60);
                    while stage.load(Ordering::SeqCst) < 2 && Instant::now() < bound {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            })
        })
    };
    let bound = Instant::now() + Duration::from_secs(60);
    while stage.load(Ordering::SeqCst) < 1 {
        assert!(Instant::now() < bound, "the older instance never reached offset 100");
        std::thread::sleep(Duration::from_millis(10));
    }
    let newer = execute(timely::Config::process(1), {
        let (brokers, input, output) = (brokers.clone(), input.clone(), output.clone());
        move |w| transactional::open(w, &config(KafkaLog::new(&brokers, &[])?, &input, &output, 30)).map(|_| ())
    });
    newer.expect("the newer instance starts");
    stage.store(2, Ordering::SeqCst);
    let line = older.join().unwrap().expect_err("the older instance is fenced").to_string();
    assert!(line.contains("fenced by a newer instance") && !line.contains('\n'), "{line}");
    assert_eq!(copy(&brokers, &input, &output, 6, |_| ()).unwrap(), COUNT);
    assert_eq!(read_all(&brokers, &output, 1), expected(COUNT));
}

#[test]
fn a_transaction_the_broker_aborted_for_its_age_says_so() {
    let _deadline = common::deadline();
    let Some(brokers) = brokers() else { return };
    let (input, output) = topics(&brokers, "aged");
    // The broker looks for timed-out transactions every 10 s
    // (transaction.abort.timed.out.transaction.cleanup.interval.ms): 6 + 10 < 20.
    let stalled = copy(&brokers, &input, &output, 6, |offset| {
        if offset == 500 {
            std::thread::sleep(Duration::from_secs(20));
        }
    });
    let line = stalled.expect_err("the transaction outlived its timeout").to_string();
    assert!(line.contains("the broker aborted the transaction") && line.contains("transaction.timeout.ms"), "{line}");
    assert!(!line.contains("zombie") && !line.contains('\n'), "{line}");
    assert_eq!(copy(&brokers, &input, &output, 6, |_| ()).unwrap(), COUNT);
    assert_eq!(read_all(&brokers, &output, 1), expected(COUNT));
}

/// Opens a pipeline on a broker nobody listens on: the refusals come first.
fn open_unreachable(
    properties: &[(String, String)],
    edit: impl Fn(&mut PipelineConfig) + Send + Sync + 'static,
) -> String {
    let log = KafkaLog::unchecked("127.0.0.1:1", properties).unwrap();
    let result = execute(timely::Config::process(1), move |w| {
        let mut config = config(log.clone(), "in", "out", 6);
        edit(&mut config);
        transactional::open(w, &config).map(|_| ())
    });
    result.expect_err("refused").to_string()
}

#[test]
fn a_commit_timeout_not_below_the_transaction_timeout_is_refused() {
    let _deadline = common::deadline();
    let line = open_unreachable(&[], |config| config.timeout = Duration::from_secs(6));
    assert!(line.contains("timeout 6s must be below transaction.timeout.ms") && !line.contains('\n'), "{line}");
}

#[test]
fn client_properties_the_pipeline_sets_itself_are_refused_by_name() {
    let _deadline = common::deadline();
    let given = [
        ("isolation.level", "read_uncommitted"),
        ("auto.offset.reset", "earliest"),
        ("transactional.id", "mine"),
        ("transaction.timeout.ms", "900000"),
        ("enable.idempotence", "true"),
    ];
    for (key, value) in given {
        let line = open_unreachable(&[(key.to_string(), value.to_string())], |_| ());
        assert!(line.contains(&format!("client property '{key}' is set by the pipeline")), "{key}: {line}");
        assert!(!line.contains(value) && !line.contains('\n'), "{key}: {line}");
    }
}
