//! `word_count --exactly-once --live --metrics-addr` on Apache Kafka
//! (`KAFKA_BROKERS`; skipped without it), scraped over HTTP. Once the
//! sample input is read, a scrape shows the input lag at 0 on both
//! partitions and a committed transaction with its duration. More input,
//! later in event time, then moves the counters: the records read grow by
//! exactly the lines written, more transactions commit, outputs and their
//! bytes are written, end-to-end latency has samples, the lag is back at 0,
//! and nothing was aborted or fenced.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::metrics::{value, Running};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::log::LogBackend;
use timely_kafka_cli::scrape::samples;

fn brokers() -> Option<String> {
    let brokers = std::env::var("KAFKA_BROKERS").ok().filter(|b| !b.is_empty());
    if brokers.is_none() {
        println!("pipeline_metrics: skipped (set KAFKA_BROKERS to an Apache Kafka with transactions)");
    }
    brokers
}

/// Builds `--bin NAME` or `--example NAME` (`kind`) of this package and
/// returns the program's path.
fn build(kind: &str, name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo).current_dir(&root).args(["build", "--quiet", kind, name]).status();
    assert!(built.unwrap().success(), "cargo build {kind} {name} failed");
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    match kind {
        "--example" => target.join("debug/examples").join(name),
        _ => target.join("debug").join(name),
    }
}

/// The input lag of every partition of `input` is 0 (and both are served).
fn caught_up(text: &str, input: &str) -> bool {
    let lags: Vec<f64> = samples(text)
        .into_iter()
        .filter(|s| {
            s.name == "timely_kafka_source_lag_records" && s.labels.iter().any(|(k, v)| k == "topic" && v == input)
        })
        .map(|s| s.value)
        .collect();
    lags.len() == 2 && lags.iter().all(|lag| *lag == 0.0)
}

/// How long a scrape may wait for what it is looking for.
const SCRAPE_BOUND: Duration = Duration::from_secs(180);

fn scrape_until(program: &mut Running, addr: SocketAddr, what: &str, done: impl Fn(&str) -> bool) -> String {
    common::metrics::scrape_until(program, addr, what, SCRAPE_BOUND, done)
}

#[test]
fn a_pipeline_serves_its_lag_commits_and_latency() {
    let Some(brokers) = brokers() else { return };
    let _deadline = common::deadline();
    let binary = build("--example", "word_count");
    let run = format!("metrics-{}-{}", std::process::id(), rand::random::<u32>());
    let (input, output) = (format!("{run}-in"), format!("{run}-out"));
    let log = KafkaLog::new(&brokers, &[]).unwrap();
    log.create_topic(&input, 2, false).unwrap();
    log.create_topic(&output, 2, false).unwrap();
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut pipeline = Running(
        Command::new(&binary)
            .args(["--brokers", &brokers, "--input", &input, "--output", &output])
            .args(["--produce-sample", "--exactly-once", "--live", "--commit-interval-ms", "200"])
            .args(["--metrics-addr", &addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let first = scrape_until(&mut pipeline, addr, "the sample consumed and committed", |t| {
        caught_up(t, &input) && value(t, "timely_kafka_pipeline_transactions_committed_total") >= 1.0
    });
    let read = value(&first, "timely_kafka_source_records_total");
    assert!(read > 0.0, "{first}");
    assert_eq!(
        value(&first, "timely_kafka_pipeline_transaction_seconds_count"),
        value(&first, "timely_kafka_pipeline_transactions_committed_total")
    );

    // The sample's time (a 1 s bucket of its Kafka timestamps) stays open
    // while no later record arrives: nothing to write yet. More input, 50
    // lines per partition, 2 s later in event time, closes it.
    let later = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 + 2000;
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    for i in 0..100 {
        let record = BaseRecord::<str, str>::to(&input)
            .partition(i % 2)
            .key("k")
            .payload("more words arrive later")
            .timestamp(later);
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let commits = value(&first, "timely_kafka_pipeline_transactions_committed_total");
    let second = scrape_until(&mut pipeline, addr, "the new lines consumed and committed", |t| {
        value(t, "timely_kafka_source_records_total") == read + 100.0
            && caught_up(t, &input)
            && value(t, "timely_kafka_pipeline_transactions_committed_total") > commits
            && value(t, "timely_kafka_pipeline_outputs_total") > 0.0
            && value(t, "timely_kafka_pipeline_end_to_end_seconds_count") > 0.0
    });
    assert!(
        value(&second, "timely_kafka_pipeline_outputs_total") > value(&first, "timely_kafka_pipeline_outputs_total")
    );
    assert!(value(&second, "timely_kafka_pipeline_transaction_bytes_sum") > 0.0);
    assert_eq!(value(&second, "timely_kafka_pipeline_transactions_aborted_total"), 0.0);
    assert_eq!(value(&second, "timely_kafka_pipeline_fenced_total"), 0.0);
    // Every sample's latency is below the bound of the test itself.
    let latency = value(&second, "timely_kafka_pipeline_end_to_end_seconds_sum");
    let count = value(&second, "timely_kafka_pipeline_end_to_end_seconds_count");
    assert!(latency / count < 180.0, "mean end-to-end latency {}", latency / count);

    // capture_inspect reads the same lag from the pipeline's progress topic:
    // the 100 later lines (and at most the 6 sample lines) are not committed.
    let inspect = build("--bin", "capture_inspect");
    let out = Command::new(inspect)
        .args([&input, "--brokers", &brokers, "--progress-topic", &format!("{output}.progress"), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let objects: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), 2);
    let mut lag = 0;
    for object in &objects {
        let field = |key: &str| object[key].as_u64().unwrap_or_else(|| panic!("{key} in {object}"));
        assert_eq!(field("end_offset"), field("committed_offset") + field("lag"), "{object}");
        lag += field("lag");
    }
    assert!((100..=106).contains(&lag), "{objects:?}");
}
