//! A capture's topics: which ones, who creates them, and waiting for them.
//!
//! Written once for everything that captures: [`crate::capture::worker::capture`],
//! [`crate::capture::worker::capture_exactly_once`] and a program that
//! sets its topics up before its computation starts (`capture_send` does,
//! on process 0, so its timing leaves topic creation out).

use std::time::{Duration, Instant};

use timely::worker::Worker;

use crate::capture::wire::stream::StreamLayout;
use crate::capture::worker::CaptureOptions;
use crate::error::{Error, Result};
use crate::log::LogBackend;
use crate::runtime::collective::agree;

/// What creating a capture's topics does to one that exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    /// As `options.overwrite` says: replace it, or refuse it if it holds data.
    PerOptions,
    /// A resume: keep it as it is (the resume continues what it holds), but
    /// refuse one with fewer partitions than streams (captured by fewer
    /// workers); a missing one is created only with `options.create_topic`,
    /// and checked even without it.
    Resume,
}

/// The topics a capture of `streams` streams writes, and the partitions each
/// needs: one topic with a partition per stream, or (the kafkaesque layout)
/// a one-partition topic per stream.
fn capture_topics(layout: StreamLayout, topic: &str, streams: u32) -> (Vec<String>, u32) {
    match layout {
        StreamLayout::Partitioned => (vec![topic.to_string()], streams),
        StreamLayout::TopicPerWorker => ((0..streams).map(|i| layout.locate(topic, i).0).collect(), 1),
    }
}

fn create<K>(
    log: &dyn LogBackend,
    topic: &str,
    streams: u32,
    options: &CaptureOptions<K>,
    existing: Existing,
) -> Result<()> {
    let (names, partitions) = capture_topics(options.layout, topic, streams);
    for name in &names {
        match existing {
            Existing::PerOptions => log.create_topic(name, partitions, options.overwrite)?,
            Existing::Resume => match log.topic_info(name)? {
                Some(info) if info.partitions < partitions => {
                    return Err(Error::Config(format!(
                        "cannot resume '{topic}': it has {} partitions, captured by fewer workers than these \
                         {streams}; resume with the same worker count (-w)",
                        info.partitions
                    )))
                }
                Some(_) => {}
                None if options.create_topic => log.create_topic(name, partitions, false)?,
                None => {}
            },
        }
    }
    Ok(())
}

/// The topic set-up of a capture, collective: worker 0 creates the topics
/// (if `options.create_topic`; a resume's checks run either way), every
/// worker waits for its own and calls
/// `open` with its topic and partition. Returns what `open` returned on
/// every worker, or the first error on every worker.
pub(crate) fn open_capture_topic<R, K>(
    worker: &mut Worker,
    log: &dyn LogBackend,
    topic: &str,
    options: &CaptureOptions<K>,
    existing: Existing,
    open: impl FnOnce(&str, u32) -> Result<R>,
) -> Result<R> {
    let (index, peers) = (worker.index() as u32, worker.peers() as u32);
    if options.create_topic || existing == Existing::Resume {
        let created = if index == 0 { create(log, topic, peers, options, existing) } else { Ok(()) };
        agree(worker, created)?;
    }
    let (name, partition) = options.layout.locate(topic, index);
    let partitions = capture_topics(options.layout, topic, peers).1;
    let opened = wait_for_topic(log, &name, partitions, options.topic_timeout).and_then(|()| open(&name, partition));
    agree(worker, opened)
}

/// Waits until `topic` exists with at least `partitions` partitions.
pub(super) fn wait_for_topic(log: &dyn LogBackend, topic: &str, partitions: u32, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match log.partitions(topic)? {
            Some(actual) if actual >= partitions => return Ok(()),
            Some(actual) if Instant::now() >= deadline => {
                return Err(Error::TooFewPartitions { topic: topic.into(), actual, wanted: partitions })
            }
            None if Instant::now() >= deadline => return Err(Error::MissingTopic(topic.into())),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::file::FileLog;

    fn partitions(log: &FileLog, name: &str) -> Option<u32> {
        log.topic_info(name).unwrap().map(|info| info.partitions)
    }

    #[test]
    fn every_layout_gets_its_topics_and_existing_ones_are_kept_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::new(dir.path());
        let partitioned = CaptureOptions::default();
        create(&log, "one", 3, &partitioned, Existing::PerOptions).unwrap();
        assert_eq!(partitions(&log, "one"), Some(3));
        let per_worker = CaptureOptions { layout: StreamLayout::TopicPerWorker, ..Default::default() };
        create(&log, "many", 3, &per_worker, Existing::PerOptions).unwrap();
        let created: Vec<_> = (0..4).map(|i| partitions(&log, &format!("many-{i}"))).collect();
        assert_eq!(created, [Some(1), Some(1), Some(1), None]);

        let mut writer = log.writer("one", 1).unwrap();
        writer.append(b"kept").unwrap();
        writer.flush().unwrap();
        drop(writer);
        let error = create(&log, "one", 3, &partitioned, Existing::PerOptions).unwrap_err();
        assert!(matches!(error, Error::TopicNotEmpty(ref topic) if topic == "one"), "{error}");
        // A resume keeps what the topic holds, refuses a topic captured by
        // fewer workers, and creates what is missing only if asked to.
        create(&log, "one", 3, &partitioned, Existing::Resume).unwrap();
        let mut reader = log.reader("one", 1, 0).unwrap();
        let record = reader.poll(Duration::from_secs(1)).unwrap().expect("the record is still there");
        assert_eq!(record.payload, b"kept");
        let error = create(&log, "one", 4, &partitioned, Existing::Resume).unwrap_err();
        assert!(error.to_string().contains("it has 3 partitions, captured by fewer workers than these 4"), "{error}");
        let existing_only = CaptureOptions { create_topic: false, ..Default::default() };
        create(&log, "fresh", 2, &existing_only, Existing::Resume).unwrap();
        assert_eq!(partitions(&log, "fresh"), None);
        create(&log, "fresh", 2, &partitioned, Existing::Resume).unwrap();
        assert_eq!(partitions(&log, "fresh"), Some(2));
    }
}
