//! A Kafka-protocol proxy in front of librdkafka's mock cluster that makes
//! ListOffsets(latest) under-report every non-empty partition's end, as
//! tansu 0.6 does after batched produces, while Fetch responses (and so their
//! high watermarks) pass through untouched. It lets `cargo test` show that a
//! source never stops short because of ListOffsets, without tansu.
//!
//! Only what that needs is parsed. The mock is told (`pin_versions`) to offer
//! Metadata, FindCoordinator and ListOffsets in version 1 only, whose
//! responses have fixed layouts: the broker ports in Metadata and
//! FindCoordinator answers are rewritten to the proxy's (so clients keep
//! talking through it: librdkafka moves a broker to the address a
//! coordinator answer names), ListOffsets offsets above 0 become 3/4 of
//! themselves (0, the earliest offset of these untrimmed topics, stays).
//! Every other request and response is forwarded byte for byte.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaApiKey;
use rdkafka::ClientContext;

const METADATA: i16 = 3;
const LIST_OFFSETS: i16 = 2;
const FIND_COORDINATOR: i16 = 10;

/// Restricts the mock to the response layouts this proxy parses.
pub fn pin_versions<C: ClientContext>(cluster: &MockCluster<'_, C>) {
    cluster.apiversion(RDKafkaApiKey::Metadata, Some(1), Some(1)).unwrap();
    cluster.apiversion(RDKafkaApiKey::ListOffsets, Some(1), Some(1)).unwrap();
    cluster.apiversion(RDKafkaApiKey::FindCoordinator, Some(1), Some(1)).unwrap();
}

/// A running proxy; stops accepting and closes its connections when dropped.
pub struct ShortEndProxy {
    /// `127.0.0.1:port`: give this to clients as their bootstrap servers.
    pub address: String,
    /// ListOffsets answers made shorter than the truth so far.
    pub shortened: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl ShortEndProxy {
    /// Proxies the single broker at `upstream` (`host:port`).
    pub fn start(upstream: &str) -> ShortEndProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream_port: i32 = upstream.rsplit(':').next().unwrap().parse().unwrap();
        let (stop, shortened) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (upstream, stopped, count, open) =
            (upstream.to_string(), stop.clone(), shortened.clone(), connections.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let server = TcpStream::connect(&upstream).unwrap();
                let mut open = open.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                let rewrite = Rewrite { upstream_port, port: port as i32, shortened: count.clone() };
                pump_pair(client, server, rewrite);
            }
        });
        ShortEndProxy { address: format!("127.0.0.1:{port}"), shortened, stop, connections }
    }
}

impl Drop for ShortEndProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for stream in self.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

#[derive(Clone)]
struct Rewrite {
    upstream_port: i32,
    port: i32,
    shortened: Arc<AtomicU64>,
}

/// Forwards requests client -> server (noting each one's API key by
/// correlation id) and responses server -> client (rewritten by API key).
fn pump_pair(mut client: TcpStream, mut server: TcpStream, rewrite: Rewrite) {
    let apis = Arc::new(Mutex::new(HashMap::<i32, i16>::new()));
    let (mut to_server, mut from_client) = (server.try_clone().unwrap(), client.try_clone().unwrap());
    let requests = apis.clone();
    std::thread::spawn(move || {
        while let Some(frame) = read_frame(&mut from_client) {
            if frame.len() >= 8 {
                let api = i16::from_be_bytes([frame[0], frame[1]]);
                let correlation = i32::from_be_bytes(frame[4..8].try_into().unwrap());
                requests.lock().unwrap().insert(correlation, api);
            }
            if write_frame(&mut to_server, &frame).is_err() {
                break;
            }
        }
        let _ = to_server.shutdown(Shutdown::Both);
    });
    std::thread::spawn(move || {
        while let Some(mut frame) = read_frame(&mut server) {
            if frame.len() >= 4 {
                let correlation = i32::from_be_bytes(frame[0..4].try_into().unwrap());
                match apis.lock().unwrap().remove(&correlation) {
                    Some(METADATA) => rewrite.metadata_v1(&mut frame[4..]),
                    Some(LIST_OFFSETS) => rewrite.list_offsets_v1(&mut frame[4..]),
                    Some(FIND_COORDINATOR) => rewrite.find_coordinator_v1(&mut frame[4..]),
                    _ => {}
                }
            }
            if write_frame(&mut client, &frame).is_err() {
                break;
            }
        }
        let _ = client.shutdown(Shutdown::Both);
    });
}

impl Rewrite {
    /// Metadata v1: brokers [node_id i32, host string, port i32, rack nullable string], ...
    fn metadata_v1(&self, body: &mut [u8]) {
        let mut at = 0;
        let brokers = i32_at(body, &mut at);
        for _ in 0..brokers {
            at += 4; // node_id
            skip_string(body, &mut at);
            self.port_at(body, at);
            at += 4;
            skip_string(body, &mut at); // rack
        }
    }

    /// FindCoordinator v1: throttle i32, error i16, message nullable string, node_id i32, host string, port i32.
    fn find_coordinator_v1(&self, body: &mut [u8]) {
        let mut at = 4 + 2;
        skip_string(body, &mut at);
        at += 4;
        skip_string(body, &mut at);
        self.port_at(body, at);
    }

    fn port_at(&self, body: &mut [u8], at: usize) {
        if i32::from_be_bytes(body[at..at + 4].try_into().unwrap()) == self.upstream_port {
            body[at..at + 4].copy_from_slice(&self.port.to_be_bytes());
        }
    }

    /// ListOffsets v1: topics [name string, partitions [index i32, error i16, timestamp i64, offset i64]].
    fn list_offsets_v1(&self, body: &mut [u8]) {
        let mut at = 0;
        let topics = i32_at(body, &mut at);
        for _ in 0..topics {
            skip_string(body, &mut at);
            let partitions = i32_at(body, &mut at);
            for _ in 0..partitions {
                at += 4 + 2 + 8;
                let offset = i64::from_be_bytes(body[at..at + 8].try_into().unwrap());
                if offset > 0 {
                    body[at..at + 8].copy_from_slice(&(offset * 3 / 4).to_be_bytes());
                    self.shortened.fetch_add(1, Ordering::Relaxed);
                }
                at += 8;
            }
        }
    }
}

fn i32_at(body: &[u8], at: &mut usize) -> i32 {
    let value = i32::from_be_bytes(body[*at..*at + 4].try_into().unwrap());
    *at += 4;
    value
}

/// Skips an i16-length string (length -1: null).
fn skip_string(body: &[u8], at: &mut usize) {
    let length = i16::from_be_bytes([body[*at], body[*at + 1]]);
    *at += 2 + length.max(0) as usize;
}

fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let mut frame = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
    stream.read_exact(&mut frame).ok()?;
    Some(frame)
}

fn write_frame(stream: &mut TcpStream, frame: &[u8]) -> std::io::Result<()> {
    stream.write_all(&(frame.len() as i32).to_be_bytes())?;
    stream.write_all(frame)
}
