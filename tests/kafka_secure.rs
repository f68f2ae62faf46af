//! Secured and compressed Apache Kafka: a node started by
//! `scripts/kafka.sh start --secure` (`.ci/run` does this) with a SASL_SSL
//! listener (SCRAM-SHA-512/256, PLAIN) and a mutual-TLS one, certificates
//! and client property files under its directory.
//!
//! - capture and replay round trips through SASL_SSL and mutual TLS, exact
//!   as multisets (count, sum, per-record fingerprint; different data per
//!   worker);
//! - a wrong password, an unknown CA and a client speaking the wrong
//!   protocol each fail the connection check within seconds, in one line
//!   naming the cause, never showing the password;
//! - every codec: topics the broker recompresses (`compression.type` on the
//!   topic) and captures compressed by the producer replay exactly; lines
//!   Kafka's own console producer wrote with each codec are read exactly by
//!   the plain source.
//!
//! Skipped unless `KAFKA_SECURE_DIR` (the node's `KAFKA_DIR`) and
//! `KAFKA_SECURE_PORT` (its `KAFKA_PORT`) are set.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Fingerprint;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use timely::dataflow::operators::{Capture, Inspect, Probe, ToStream};
use timely_kafka::connect::source::{KafkaSource, SourceConfig, SourceEnd};
use timely_kafka::log::kafka::KafkaLog;
use timely_kafka::{
    capture, execute, replay, step_until_done, CaptureOptions, EventConsumer, ReplayLog, ReplayOptions,
};

/// The secured node: its directory and base port.
struct Node {
    dir: String,
    port: u16,
}

fn node() -> Option<Node> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(dir), Some(port)) = (var("KAFKA_SECURE_DIR"), var("KAFKA_SECURE_PORT")) else {
        eprintln!(
            "skipped: KAFKA_SECURE_DIR and KAFKA_SECURE_PORT are not set (run KAFKA_DIR=D KAFKA_PORT=P \
             scripts/kafka.sh start --secure, then set them to D and P)"
        );
        return None;
    };
    Some(Node { dir, port: port.parse().expect("KAFKA_SECURE_PORT is a port") })
}

impl Node {
    fn plaintext(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    fn sasl_ssl(&self) -> String {
        format!("127.0.0.1:{}", self.port + 2)
    }
    fn mtls(&self) -> String {
        format!("127.0.0.1:{}", self.port + 3)
    }

    /// The `key=value` lines of one of the node's client property files.
    fn properties(&self, file: &str) -> Vec<(String, String)> {
        let path = format!("{}/{file}", self.dir);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
            .collect()
    }

    fn tls_file(&self, name: &str) -> String {
        format!("{}/tls/{name}", self.dir)
    }
}

/// `properties` with `key` set to `value`.
fn with(mut properties: Vec<(String, String)>, key: &str, value: &str) -> Vec<(String, String)> {
    properties.retain(|(k, _)| k != key);
    properties.push((key.to_string(), value.to_string()));
    properties
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

const WRITERS: usize = 3;
const READERS: usize = 2;
const COUNT: u64 = 20_000;

/// Captures `COUNT` numbers per worker (worker w sends `i * WRITERS + w`)
/// into `topic` with `WRITERS` workers; the expected multiset.
fn capture_numbers(log: &KafkaLog, topic: &str) -> Fingerprint {
    let (log, topic) = (log.clone(), topic.to_string());
    execute(timely::Config::process(WRITERS), move |worker| {
        let producer = capture(worker, &log, &topic, CaptureOptions::default())?;
        let (w, peers) = (worker.index() as u64, worker.peers() as u64);
        worker.dataflow::<u64, _, _>(|scope| {
            (0..COUNT).map(move |i| i * peers + w).to_stream(scope).container::<Vec<u64>>().capture_into(producer)
        });
        Ok(())
    })
    .expect("capture");
    let mut expected = Fingerprint::default();
    (0..COUNT * WRITERS as u64).for_each(|x| expected.add(x));
    expected
}

/// Replays `topic` with `READERS` workers.
fn replay_numbers(log: &KafkaLog, topic: &str) -> Fingerprint {
    let (log, topic) = (log.clone(), topic.to_string());
    let per_worker = execute(timely::Config::process(READERS), move |worker| {
        let options = ReplayOptions { idle_timeout: Some(Duration::from_secs(30)), ..Default::default() };
        let streams: Vec<EventConsumer<u64, Vec<u64>>> = replay(worker, &log, &topic, options)?;
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Fingerprint::default()));
        let sink = seen.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            streams.replay_log(scope).inspect(move |x| sink.borrow_mut().add(*x)).probe().0
        });
        step_until_done(worker, &probe);
        let fp = *seen.borrow();
        Ok(fp)
    })
    .expect("replay");
    per_worker.into_iter().fold(Fingerprint::default(), Fingerprint::merge)
}

fn round_trip(log: &KafkaLog, prefix: &str) {
    let topic = unique(prefix);
    let expected = capture_numbers(log, &topic);
    assert_eq!(replay_numbers(log, &topic), expected, "replay of '{topic}'");
}

#[test]
fn sasl_ssl_with_scram_round_trip_is_exact() {
    let _deadline = common::deadline();
    let Some(node) = node() else { return };
    let log = KafkaLog::new(&node.sasl_ssl(), &node.properties("client-sasl-ssl.properties")).expect("SASL_SSL");
    round_trip(&log, "sasl-ssl");
}

#[test]
fn mutual_tls_round_trip_is_exact() {
    let _deadline = common::deadline();
    let Some(node) = node() else { return };
    let log = KafkaLog::new(&node.mtls(), &node.properties("client-mtls.properties")).expect("mutual TLS");
    round_trip(&log, "mtls");
}

#[test]
fn scram_sha_256_and_plain_connect() {
    let _deadline = common::deadline();
    let Some(node) = node() else { return };
    for mechanism in ["SCRAM-SHA-256", "PLAIN"] {
        let properties = with(node.properties("client-sasl-ssl.properties"), "sasl.mechanism", mechanism);
        KafkaLog::new(&node.sasl_ssl(), &properties).unwrap_or_else(|e| panic!("{mechanism}: {e}"));
    }
}

/// The connection check of `properties` against `brokers` fails within a
/// few seconds, in one line holding `cause` and never `secret`.
fn refused(brokers: &str, properties: &[(String, String)], cause: &str, secret: &str) {
    let started = Instant::now();
    let error = KafkaLog::new(brokers, properties).expect_err("the broker must refuse this client").to_string();
    let took = started.elapsed();
    eprintln!("refused in {took:.1?}: {error}");
    assert!(error.contains(cause), "'{cause}' not named: {error}");
    assert!(took < Duration::from_secs(10), "refused only after {took:?}: {error}");
    assert!(!error.contains('\n') && !error.contains(secret), "{error}");
}

#[test]
fn a_wrong_password_fails_at_once_naming_authentication() {
    let _deadline = common::deadline();
    let Some(node) = node() else { return };
    let secret = "not-alice-secret-42";
    let properties = with(node.properties("client-sasl-ssl.properties"), "sasl.password", secret);
    refused(&node.sasl_ssl(), &properties, "SASL authentication failed", secret);
}

#[test]
fn an_unknown_ca_fails_at_once_naming_tls() {
    let _deadline = common::deadline();
    let Some(node) = node() else { return };
    let properties =
        with(node.properties("client-sasl-ssl.properties"), "ssl.ca.location", &node.tls_file("other-ca.pem"));
    refused(&node.sasl_ssl(), &properties, "TLS handshake failed", "alice-secret");
}

#[test]
fn a_host_name_the_certificate_does_not_name_fails_at_once_naming_tls() {
    let _deadline = common::deadline();
    let Some(node) = node() else { return };
    // The broker's certificate names 127.0.0.1 and localhost; 127.0.0.2,
    // forwarded to the listener, is the same broker under an address it
    // does not carry (librdkafka checks it:
    // ssl.endpoint.identification.algorithm=https).
    let properties =
        with(node.properties("client-sasl-ssl.properties"), "ssl.endpoint.identification.algorithm", "https");
    let forwarded = forward("127.0.0.2", &node.sasl_ssl());
    refused(&forwarded, &properties, "TLS handshake failed", "alice-secret");
    // The name is the cause: without the check the same client connects.
    let unchecked = with(properties, "ssl.endpoint.identification.algorithm", "none");
    KafkaLog::new(&forwarded, &unchecked).expect("the forwarded listener, its name unchecked");
}

/// Listens on `ip` (an ephemeral port) and forwards every connection to
/// `to`, for as long as the test process runs; returns `ip:port`.
fn forward(ip: &str, to: &str) -> String {
    let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let to = to.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(&to) else { continue };
            let (mut client_in, mut server_in) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut client_out, mut server_out) = (client, server);
            std::thread::spawn(move || std::io::copy(&mut client_in, &mut server_out));
            std::thread::spawn(move || std::io::copy(&mut server_in, &mut client_out));
        }
    });
    address
}

#[test]
fn a_mechanism_the_listener_does_not_enable_fails_at_once_naming_authentication() {
    let _deadline = common::deadline();
    let Some(node) = node() else { return };
    // The listener enables SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN.
    let properties = with(node.properties("client-sasl-ssl.properties"), "sasl.mechanism", "OAUTHBEARER");
    let properties = with(properties, "enable.sasl.oauthbearer.unsecure.jwt", "true");
    let properties = with(properties, "sasl.oauthbearer.config", "principal=alice");
    refused(&node.sasl_ssl(), &properties, "SASL authentication failed", "alice-secret");
}

#[test]
fn the_wrong_protocol_for_a_listener_fails_at_once() {
    let _deadline = common::deadline();
    let Some(node) = node() else { return };
    // Plaintext against the TLS listener.
    refused(&node.mtls(), &[], "security.protocol", "alice-secret");
    // TLS without SASL against the SASL_SSL listener (no credentials at all).
    let tls_only = vec![
        ("security.protocol".to_string(), "SSL".to_string()),
        ("ssl.ca.location".to_string(), node.tls_file("ca.pem")),
    ];
    refused(&node.sasl_ssl(), &tls_only, "security.protocol", "alice-secret");
}

const CODECS: [&str; 4] = ["gzip", "snappy", "lz4", "zstd"];

/// Creates `topic` with `partitions` partitions and `compression.type`.
fn create_compressed(brokers: &str, topic: &str, partitions: i32, codec: &str) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin client");
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1)).set("compression.type", codec);
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let created = futures_executor::block_on(admin.create_topics(&[new_topic], &options)).expect("create topic");
    for result in created {
        result.unwrap_or_else(|(name, code)| panic!("create '{name}': {code}"));
    }
}

#[test]
fn topics_the_broker_recompresses_replay_exactly_with_every_codec() {
    let _deadline = common::deadline();
    let Some(node) = node() else { return };
    let log = KafkaLog::new(&node.plaintext(), &[]).unwrap();
    for codec in CODECS {
        let topic = unique(&format!("broker-{codec}"));
        create_compressed(&node.plaintext(), &topic, WRITERS as i32, codec);
        let expected = capture_numbers(&log, &topic);
        assert_eq!(replay_numbers(&log, &topic), expected, "replay of '{topic}' (broker-side {codec})");
    }
}

#[test]
fn captures_the_producer_compresses_replay_exactly_with_every_codec() {
    let _deadline = common::deadline();
    let Some(node) = node() else { return };
    for codec in CODECS {
        let properties = [("compression.type".to_string(), codec.to_string())];
        let log = KafkaLog::new(&node.plaintext(), &properties).unwrap();
        round_trip(&log, &format!("producer-{codec}"));
    }
}

/// Lines written by Kafka's Java console producer with each codec are read
/// by the plain source, each exactly once.
#[test]
fn the_source_reads_what_the_java_producer_compressed_with_every_codec() {
    let _deadline = common::deadline();
    let Some(node) = node() else { return };
    for codec in CODECS {
        let topic = unique(&format!("java-{codec}"));
        create_compressed(&node.plaintext(), &topic, 2, "producer");
        let lines: Vec<String> = (0..500).map(|i| format!("{codec} line {i}")).collect();
        java_produce(&node, &topic, codec, &lines);
        eprintln!("the console producer wrote {} lines with {codec} into '{topic}'", lines.len());
        let mut read = read_lines(&node.plaintext(), &topic);
        read.sort();
        let mut expected = lines.clone();
        expected.sort();
        assert_eq!(read, expected, "lines the source read from '{topic}' ({codec})");
    }
}

fn java_produce(node: &Node, topic: &str, codec: &str, lines: &[String]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh");
    let mut child = Command::new(script)
        .args(["run", "org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", &node.plaintext()])
        // Batched (not --sync, which waits out the linger per line): whole
        // compressed batches of many records.
        .args(["--topic", topic, "--compression-codec", codec, "--timeout", "50"])
        .env("KAFKA_DIR", &node.dir)
        .env("KAFKA_PORT", node.port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the console producer");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && !stderr.contains("ERROR"), "console producer ({codec}): {stderr}");
}

/// Every line of `topic` (to its current end), read by `kafka_source` with
/// two workers.
fn read_lines(brokers: &str, topic: &str) -> Vec<String> {
    let (brokers, topic) = (brokers.to_string(), topic.to_string());
    let per_worker = execute(timely::Config::process(2), move |worker| {
        let log = KafkaLog::new(&brokers, &[])?;
        let config = SourceConfig::new(log).end(SourceEnd::CurrentEnd);
        let seen = std::rc::Rc::new(std::cell::RefCell::new(BTreeMap::<String, u64>::new()));
        let sink = seen.clone();
        let probe = worker.dataflow::<u64, _, _>(|scope| {
            let (lines, _) = scope.kafka_source(config, &topic, None, |r| {
                Some((0, String::from_utf8_lossy(r.payload.unwrap_or_default()).into_owned()))
            });
            lines.inspect(move |line: &String| *sink.borrow_mut().entry(line.clone()).or_default() += 1).probe().0
        });
        while !probe.done() {
            worker.step_or_park(Some(Duration::from_millis(5)));
        }
        let seen = seen.borrow().clone();
        Ok(seen)
    })
    .expect("read with the source");
    let mut lines = Vec::new();
    for seen in per_worker {
        for (line, times) in seen {
            lines.extend(std::iter::repeat_n(line, times as usize));
        }
    }
    lines
}

/// `word_count --exactly-once` through SASL_SSL, with the client
/// properties given as `-X` flags: the first run counts the sample lines
/// and writes every word's count; a second run finds nothing new and
/// writes nothing (its transactions resumed after the first's commit).
#[test]
fn an_exactly_once_pipeline_runs_through_sasl_ssl() {
    let _deadline = common::deadline();
    let Some(node) = node() else { return };
    let (input, output) = (unique("secure-lines"), unique("secure-counts"));
    let mut flags: Vec<String> = Vec::new();
    for (key, value) in node.properties("client-sasl-ssl.properties") {
        flags.extend(["-X".to_string(), format!("{key}={value}")]);
    }
    let run = |sample: bool| {
        let mut command = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/target/debug/examples/word_count"));
        command.args(["--brokers", &node.sasl_ssl(), "--input", &input, "--output", &output, "--exactly-once"]);
        command.args(&flags);
        if sample {
            command.arg("--produce-sample");
        }
        let out = command.stdin(Stdio::null()).output().expect("run word_count (cargo test builds the examples)");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "word_count failed: {stderr}");
        assert!(!stdout.contains("alice-secret") && !stderr.contains("alice-secret"), "the password was shown");
        let last = stdout.lines().last().unwrap_or_default().to_string();
        let field = |key: &str| {
            last.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")).and_then(|v| v.parse::<u64>().ok()))
                .unwrap_or_else(|| panic!("no {key}= in {last:?}"))
        };
        (field("words"), field("written"))
    };
    let (words, written) = run(true);
    assert!(words > 0 && written == words, "first run: {words} words, {written} written");
    let (_, again) = run(false);
    assert_eq!(again, 0, "a second run over the same input wrote {again} records again");
}
