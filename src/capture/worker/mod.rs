//! Per-worker helpers: what every capturing or replaying program repeats.
//!
//! Capturing: create the topic once (worker 0), make every other worker wait
//! for it, open the writer of partition `worker.index()`. Replaying: learn
//! how many streams the capture wrote, give worker j every stream p with
//! p % peers == j, choose each partition's session, set an idle timeout.
//! [`capture`] and [`replay`] do that, and [`crate::execute`] runs a computation
//! whose capture or replay failures come back as its `Err`.
//!
//! The helpers are *collective* (see `collective`): every
//! worker must call them, in the same order, and they return `Ok` on every
//! worker or an error on every worker. So returning early with `?` is safe:
//! no worker is left waiting for a peer that never builds its dataflow.
//!
//! The crate documentation shows them in use.

mod exactly_once;
pub(crate) mod resume;
mod topics;

pub use exactly_once::{capture_exactly_once, StreamStart};

use std::time::Duration;

use timely::progress::Timestamp;
use timely::worker::Worker;

use crate::capture::producer::EventProducer;
use crate::capture::replay::consumer::EventConsumer;
use crate::capture::wire::codec::{Bincode, EventCodec};
use crate::capture::wire::frame;
use crate::capture::wire::stream::{StreamHeader, StreamLayout};
use crate::error::{Error, Result};
use crate::log::{LogBackend, PartitionReader, PartitionWriter, TopicInfo};
use crate::runtime::collective::{agree, all_gather};
use topics::{open_capture_topic, Existing};

/// The producer [`capture`] opens: over any backend's writer.
pub(crate) type AnyProducer<T, C, K> = EventProducer<T, C, Box<dyn PartitionWriter>, K>;

/// A consumer [`replay`] opens: over any backend's reader.
pub(crate) type AnyConsumer<T, C, K> = EventConsumer<T, C, Box<dyn PartitionReader>, K>;

/// How [`capture`] sets up the topic, and the codec its producers write with.
///
/// The codec is a type (its bounds on `T` and `C` differ), chosen by value:
/// `CaptureOptions::default()` writes [`Bincode`]; `.codec(Abomonation)`
/// switches, so no call needs a turbofish.
#[derive(Clone, Debug)]
#[must_use]
pub struct CaptureOptions<K = Bincode> {
    /// The codec of the events (default [`Bincode`]).
    pub codec: K,
    /// Where the streams go (default: one topic, a partition per worker).
    pub layout: StreamLayout,
    /// Whether worker 0 creates the topic (default `true`); when `false` the
    /// topic must exist, with a partition per worker.
    pub create_topic: bool,
    /// Replace a topic that already holds data (default `false`: an error).
    pub overwrite: bool,
    /// How long workers wait for the topic to appear in the log's metadata.
    pub topic_timeout: Duration,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            codec: Bincode,
            layout: StreamLayout::Partitioned,
            create_topic: true,
            overwrite: false,
            topic_timeout: Duration::from_secs(30),
        }
    }
}

impl<K> CaptureOptions<K> {
    /// The same options with another codec.
    pub fn codec<K2>(self, codec: K2) -> CaptureOptions<K2> {
        let CaptureOptions { codec: _, layout, create_topic, overwrite, topic_timeout } = self;
        CaptureOptions { codec, layout, create_topic, overwrite, topic_timeout }
    }
}

/// How [`replay`] finds and reads the streams, and the codec they were
/// written with (`ReplayOptions::default()`: [`Bincode`]; `.codec(..)` switches).
#[derive(Clone, Debug)]
#[must_use]
pub struct ReplayOptions<K = Bincode> {
    /// The codec the capture wrote with (default [`Bincode`]).
    pub codec: K,
    /// Where the streams are (default: one topic, a partition per stream).
    pub layout: StreamLayout,
    /// How many streams to replay (default: as many as the capture wrote,
    /// from the first stream header, else the topic's partition count).
    pub streams: Option<u32>,
    /// Fail a stream that sees no record for this long before it completes
    /// (default 60 s; `None` waits for a live stream forever).
    pub idle_timeout: Option<Duration>,
    /// Bound of each read made while opening (default 10 s).
    pub open_timeout: Duration,
    /// Accept streams whose header names other Rust types (see
    /// [`EventConsumer::skip_type_check`]).
    pub skip_type_check: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            codec: Bincode,
            layout: StreamLayout::Partitioned,
            streams: None,
            idle_timeout: Some(Duration::from_secs(60)),
            open_timeout: Duration::from_secs(10),
            skip_type_check: false,
        }
    }
}

impl<K> ReplayOptions<K> {
    /// The same options with another codec.
    pub fn codec<K2>(self, codec: K2) -> ReplayOptions<K2> {
        let ReplayOptions { codec: _, layout, streams, idle_timeout, open_timeout, skip_type_check } = self;
        ReplayOptions { codec, layout, streams, idle_timeout, open_timeout, skip_type_check }
    }
}

/// This worker's producer: worker 0 creates the topic (per `options`),
/// every worker then opens the writer of its own partition and writes its
/// stream header. Collective: call it on every worker.
pub fn capture<T, C, K>(
    worker: &mut Worker,
    log: &dyn LogBackend,
    topic: &str,
    options: CaptureOptions<K>,
) -> Result<AnyProducer<T, C, K>>
where
    T: Timestamp,
    C: timely::Accountable + 'static,
    K: EventCodec<T, C>,
{
    let (index, peers) = (worker.index() as u32, worker.peers() as u32);
    // Overlaps the writers' start-up with creating and waiting for the topic.
    log.prepare_writers()?;
    open_capture_topic(worker, log, topic, &options, Existing::PerOptions, |name, partition| {
        EventProducer::<T, C, _, K>::with_codec(log.writer(name, partition)?, index, peers)
    })
}

/// This worker's consumers: every stream p with p % peers == index, each
/// positioned at the session to replay ([`EventConsumer::open`]). The stream
/// count comes from worker 0, so all workers assign alike. Collective: call
/// it on every worker.
///
/// Opening a stream costs broker round trips (its end, its last record, its
/// session's start and header), and counting the streams needs a stream
/// header (the capture may have used fewer workers than the topic has
/// partitions). So every worker first opens, in parallel, the partitions it
/// would take if every partition held a stream; worker 0 counts the streams
/// from the header of stream 0, which it has just read; partitions the
/// count leaves out are closed unused.
pub fn replay<T, C, K>(
    worker: &mut Worker,
    log: &dyn LogBackend,
    topic: &str,
    options: ReplayOptions<K>,
) -> Result<Vec<AnyConsumer<T, C, K>>>
where
    T: Timestamp,
    C: Send + 'static,
    K: EventCodec<T, C> + Send,
{
    let (index, peers) = (worker.index(), worker.peers());
    let info = match options.layout {
        StreamLayout::Partitioned => Some(log.topic_info(topic)),
        // Which topics exist is known only once worker 0 counts them.
        StreamLayout::TopicPerWorker => None,
    };
    // Only partitions that exist: worker 0's count reports any that do not.
    let candidates: Vec<u32> = match &info {
        Some(Ok(Some(info))) => {
            let streams = options.streams.map_or(info.partitions, |streams| streams.min(info.partitions));
            StreamLayout::assigned(streams, index, peers).collect()
        }
        _ => Vec::new(),
    };
    let mut early = open_streams::<T, C, K>(log, topic, &options, &candidates);
    let planned = if index == 0 {
        // Stream 0 is always worker 0's: its header, read while opening.
        let first_header = early
            .iter()
            .find(|(stream, _)| *stream == 0)
            .and_then(|(_, opened)| opened.as_ref().ok()?.stream_header().cloned());
        stream_count(log, topic, &options, info, first_header)
    } else {
        Ok(0)
    };
    let plan = all_gather(worker, planned.as_ref().map_err(|e| e.to_string()).copied());
    let streams = match (planned, plan.into_iter().next()) {
        (Err(error), _) => return Err(error),
        (Ok(_), Some(Ok(streams))) => streams,
        (Ok(_), Some(Err(message))) => return Err(Error::Dataflow(message)),
        (Ok(_), None) => unreachable!("worker 0 always contributes"),
    };
    let assigned: Vec<u32> = StreamLayout::assigned(streams, index, peers).collect();
    let missing: Vec<u32> = assigned.iter().copied().filter(|s| !early.iter().any(|(e, _)| e == s)).collect();
    early.extend(open_streams::<T, C, K>(log, topic, &options, &missing));
    let opened: Result<Vec<_>> = assigned
        .iter()
        .map(|stream| {
            let at = early.iter().position(|(s, _)| s == stream).expect("every assigned stream was opened");
            early.swap_remove(at).1
        })
        .collect();
    drop(early); // opened early, not assigned
    agree(worker, opened)
}

/// A stream and the outcome of opening it.
type Opened<T, C, K> = (u32, Result<AnyConsumer<T, C, K>>);

/// Streams a worker opens at once. Opening waits on broker round trips, so
/// a few threads hide most of the latency; a bound keeps a worker assigned
/// hundreds of partitions from starting hundreds of threads (and clients).
const MAX_OPENING: usize = 16;

/// Opens a consumer of each of `streams`, up to [`MAX_OPENING`] at a time:
/// choosing a session costs broker round trips that need not wait for one
/// another.
fn open_streams<T, C, K>(
    log: &dyn LogBackend,
    topic: &str,
    options: &ReplayOptions<K>,
    streams: &[u32],
) -> Vec<Opened<T, C, K>>
where
    T: Timestamp,
    C: Send + 'static,
    K: EventCodec<T, C> + Send,
{
    let (layout, open_timeout, idle_timeout, skip_type_check) =
        (options.layout, options.open_timeout, options.idle_timeout, options.skip_type_check);
    // Only stream 0's header is needed before replay starts, to count the
    // streams; the others are read by the replay.
    let count_from_header = options.streams.is_none() && matches!(layout, StreamLayout::Partitioned);
    let open = move |stream: u32| -> Result<AnyConsumer<T, C, K>> {
        let (name, partition) = layout.locate(topic, stream);
        let read_header = stream == 0 && count_from_header;
        let mut consumer =
            EventConsumer::<T, C, _, K>::open_at_session(log, &name, partition, open_timeout, read_header)?;
        if let Some(timeout) = idle_timeout {
            consumer = consumer.idle_timeout(timeout);
        }
        if skip_type_check {
            consumer = consumer.skip_type_check();
        }
        Ok(consumer)
    };
    let mut opened = Vec::with_capacity(streams.len());
    for batch in streams.chunks(MAX_OPENING) {
        std::thread::scope(|scope| {
            let opening: Vec<_> = batch.iter().map(|&stream| (stream, scope.spawn(move || open(stream)))).collect();
            for (stream, handle) in opening {
                opened.push((stream, handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p))));
            }
        });
    }
    opened
}

/// How many streams to replay, checked against what the log holds.
/// `info`: the topic as this worker saw it (partitioned layout);
/// `first_header`: stream 0's header, if it was read while opening.
fn stream_count<K>(
    log: &dyn LogBackend,
    topic: &str,
    options: &ReplayOptions<K>,
    info: Option<Result<Option<TopicInfo>>>,
    first_header: Option<StreamHeader>,
) -> Result<u32> {
    if options.streams == Some(0) {
        return Err(Error::Config("the stream count must be at least 1".into()));
    }
    match options.layout {
        StreamLayout::Partitioned => {
            let info =
                info.unwrap_or_else(|| log.topic_info(topic))?.ok_or_else(|| Error::MissingTopic(topic.to_string()))?;
            let streams = match options.streams {
                Some(streams) => streams,
                // The capture may have used fewer workers than the topic has
                // partitions: its stream header says how many streams it wrote.
                None => match first_header {
                    Some(header) => Some(header),
                    None => read_first_header(log, StreamLayout::Partitioned, topic, options.open_timeout)?,
                }
                .map_or(info.partitions, |h| h.peers.clamp(1, info.partitions)),
            };
            if streams > info.partitions {
                return Err(Error::TooFewPartitions {
                    topic: topic.to_string(),
                    actual: info.partitions,
                    wanted: streams,
                });
            }
            Ok(streams)
        }
        StreamLayout::TopicPerWorker => {
            let mut found = 0;
            while log.topic_info(&format!("{topic}-{found}"))?.is_some() {
                found += 1;
            }
            let streams = options.streams.unwrap_or(found);
            if streams == 0 || streams > found {
                return Err(Error::MissingTopic(format!("{topic}-{found}")));
            }
            Ok(streams)
        }
    }
}

/// Reads the stream header at the start of stream 0 of `name`, waiting at
/// most `timeout` for it: its `peers` field says how many streams the capture
/// wrote, which can be fewer than the topic's partitions.
///
/// `Ok(None)` if no header arrived in time or the first record is not one.
fn read_first_header(
    log: &dyn LogBackend,
    layout: StreamLayout,
    name: &str,
    timeout: Duration,
) -> Result<Option<StreamHeader>> {
    let (topic, partition) = layout.locate(name, 0);
    let mut reader = log.reader(&topic, partition, 0)?;
    let Some(record) = reader.poll(timeout)? else { return Ok(None) };
    let Ok(frame) = frame::decode_frame(record.payload) else { return Ok(None) };
    Ok(StreamHeader::of_frame(&frame).and_then(|header| header.ok()))
}
