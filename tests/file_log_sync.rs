//! `sync=true` on the file log: every commit is on disk before the capture
//! counts it, and nothing after it is on disk without what it covers. The
//! writer's fsyncs are observed through its durability counters (no power
//! cut needed): a writer wrapped around it checks, at each commit hook, what
//! is durable and what the capture has counted.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use timely::dataflow::operators::capture::event::{Event, EventPusher};
use timely::progress::Stamp;
use timely_kafka::error::TopicPartition;
use timely_kafka::exactly_once::CommitOptions;
use timely_kafka::log::file::{FileLog, FileWriter};
use timely_kafka::log::{LogBackend, PartitionWriter, WriterHooks};
use timely_kafka::status::{CaptureStats, Status};
use timely_kafka::EventProducer;
use timely_kafka::Result;

/// What the wrapper saw at one commit.
#[derive(Clone, Copy, Debug, Default)]
struct CommitSeen {
    /// Segment bytes on disk / appended when the commit record was about to be appended.
    before: (u64, u64),
    /// The same once the commit hook returned (the commit record appended).
    after: (u64, u64),
    /// The capture's commit counter when the commit hook was entered.
    counted_at_commit_point: u64,
    /// Commits the wrapper had seen complete before this one.
    completed_before: u64,
}

struct Watched {
    inner: FileWriter,
    appended: u64,
    handle: Arc<OnceLock<Status<CaptureStats>>>,
    seen: Arc<Mutex<Vec<CommitSeen>>>,
    pending: Option<CommitSeen>,
}

impl Watched {
    fn durable(&self) -> (u64, u64) {
        (self.inner.durability().synced_len, self.appended)
    }
}

impl PartitionWriter for Watched {
    fn partition(&self) -> &TopicPartition {
        self.inner.partition()
    }
    fn append(&mut self, record: &[u8]) -> Result<()> {
        self.appended += 8 + record.len() as u64;
        self.inner.append(record)
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
    fn publish(&mut self) -> Result<()> {
        self.inner.publish()
    }
    fn max_record_bytes(&self) -> usize {
        self.inner.max_record_bytes()
    }
}

impl WriterHooks for Watched {
    fn before_commit(&mut self) -> Result<()> {
        self.inner.before_commit()?;
        let completed_before = self.seen.lock().unwrap().len() as u64;
        self.pending = Some(CommitSeen { before: self.durable(), completed_before, ..Default::default() });
        Ok(())
    }
    fn commit_point(&mut self) -> Result<()> {
        let counted = self.handle.get().expect("handle registered").stats().commits;
        self.inner.commit_point()?;
        let mut seen = self.pending.take().unwrap_or_default();
        seen.after = self.durable();
        seen.counted_at_commit_point = counted;
        self.seen.lock().unwrap().push(seen);
        Ok(())
    }
}

/// Captures 20 times of data exactly-once into a `sync` file log; returns
/// what each commit hook saw, the capture's counted commits, and the
/// writer's fsync count.
fn capture_with_sync(sync: bool) -> (Vec<CommitSeen>, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let properties = [("sync".to_string(), sync.to_string())];
    let log = FileLog::new(dir.path()).with_properties(&properties).unwrap();
    log.create_topic("t", 1, false).unwrap();
    let handle = Arc::new(OnceLock::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let writer = Watched {
        inner: log.open_writer("t", 0).unwrap(),
        appended: 0,
        handle: handle.clone(),
        seen: seen.clone(),
        pending: None,
    };
    let options = CommitOptions { commit_interval: Duration::ZERO, ..Default::default() };
    let mut producer = EventProducer::<u64, Vec<u64>, Watched>::exactly_once(writer, 0, 1, options).unwrap();
    let capture = producer.status();
    handle.set(capture.clone()).ok().unwrap();
    for time in 0..20u64 {
        producer.push(Event::Messages(Stamp::from_elem(time), (time * 100..time * 100 + 100).collect()));
        producer.push(Event::Progress(vec![(time, -1), (time + 1, 1)]));
    }
    producer.push(Event::Progress(vec![(20, -1)]));
    assert!(capture.is_complete(), "{:?}", capture.error());
    let syncs = {
        // The producer owns the writer; the last fsync count is read back
        // from a writer reopened after it: the capture is complete here.
        let stats = capture.stats();
        drop(producer);
        (stats.commits, log.open_writer("t", 0).unwrap().durability().syncs)
    };
    let seen = seen.lock().unwrap().clone();
    (seen, syncs.0, syncs.1)
}

#[test]
fn with_sync_every_commit_is_on_disk_before_it_is_counted() {
    let (seen, counted, _) = capture_with_sync(true);
    assert!(counted >= 20, "expected a commit per time, got {counted}");
    assert_eq!(seen.len() as u64, counted, "every counted commit went through the commit hooks: {seen:?}");
    for (i, commit) in seen.iter().enumerate() {
        let i = i as u64;
        // Everything before the commit record was on disk before it was appended.
        assert_eq!(commit.before.0, commit.before.1, "commit {i}: records before it not fsynced: {commit:?}");
        // The commit record itself was on disk when the hook returned...
        assert!(commit.after.1 > commit.before.1, "commit {i}: no commit record appended: {commit:?}");
        assert_eq!(commit.after.0, commit.after.1, "commit {i}: commit record not fsynced: {commit:?}");
        // ...and the capture had not counted it yet.
        assert_eq!(commit.completed_before, i);
        assert_eq!(commit.counted_at_commit_point, i, "commit {i} counted before it was on disk: {commit:?}");
    }
}

#[test]
fn without_sync_commits_are_not_fsynced() {
    let (seen, counted, syncs) = capture_with_sync(false);
    assert!(counted >= 20);
    assert!(seen.iter().all(|c| c.after.0 == 0), "fsync without sync=true: {seen:?}");
    assert_eq!(syncs, 0);
}
