//! `mock_broker`: librdkafka's in-process mock Kafka cluster, kept up as a
//! process on 127.0.0.1, so `capture_send` and `capture_recv` can meet on a
//! broker with nothing installed.
//!
//! The mock cluster listens on random ports; this program forwards a fixed
//! bootstrap port to it (clients then connect to the brokers it advertises).
//! The mock broker does not implement CreateTopics, so topics are created
//! here with `--topic NAME:PARTITIONS`. It keeps only the newest 5 MiB of
//! each partition: use it for small runs, tansu (`scripts/broker.sh`) for
//! large ones.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use clap::Parser;
use rdkafka::mocking::MockCluster;

const PROGRAM: &str = "mock_broker";

/// Run librdkafka's mock Kafka cluster on 127.0.0.1.
#[derive(Parser, Debug)]
#[command(name = PROGRAM, version)]
struct Args {
    /// Bootstrap port on 127.0.0.1.
    #[arg(long, default_value_t = 9092)]
    port: u16,
    /// Number of mock brokers.
    #[arg(long, default_value_t = 1)]
    brokers: i32,
    /// Topic to create, as NAME:PARTITIONS (repeatable).
    #[arg(long = "topic", value_name = "NAME:PARTITIONS", value_parser = parse_topic)]
    topics: Vec<(String, i32)>,
}

fn parse_topic(text: &str) -> Result<(String, i32), String> {
    let (name, partitions) = text.split_once(':').ok_or_else(|| format!("expected NAME:PARTITIONS, got '{text}'"))?;
    let partitions = partitions
        .parse::<i32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("'{partitions}' is not a positive partition count"))?;
    Ok((name.to_string(), partitions))
}

fn main() {
    let args = Args::parse();
    timely_kafka::exit_on_unhandled_failure(PROGRAM);
    let cluster = MockCluster::new(args.brokers)
        .unwrap_or_else(|e| timely_kafka_cli::fail(PROGRAM, format!("mock cluster: {e}")));
    for (name, partitions) in &args.topics {
        let replication = args.brokers.min(3);
        if let Err(e) = cluster.create_topic(name, *partitions, replication) {
            timely_kafka_cli::fail(PROGRAM, format!("create topic '{name}': {e}"));
        }
    }
    let target = cluster.bootstrap_servers().split(',').next().unwrap_or_default().to_string();
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .unwrap_or_else(|e| timely_kafka_cli::fail(PROGRAM, format!("bind 127.0.0.1:{}: {e}", args.port)));
    println!("{PROGRAM}: listening on 127.0.0.1:{} (mock brokers {})", args.port, cluster.bootstrap_servers());
    let _ = std::io::stdout().flush();
    for client in listener.incoming().flatten() {
        let target = target.clone();
        std::thread::spawn(move || {
            if let Ok(server) = TcpStream::connect(&target) {
                forward(client, server);
            }
        });
    }
}

/// Copies bytes both ways until either side closes.
fn forward(client: TcpStream, server: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else { return };
    let upstream = std::thread::spawn(move || pipe(client_read, server));
    pipe(server_read, client);
    let _ = upstream.join();
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buffer) {
        if n == 0 || to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}
