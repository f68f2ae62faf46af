//! Watermarks asked for while a cluster's metadata is in motion.
//!
//! A replicated cluster answers ListOffsets with "unknown partition", "not
//! leader" or "offset not available" for a while after a topic is created
//! (each Apache Kafka broker learns new partitions from the KRaft
//! controller on its own schedule), after a partition leader dies (until
//! the controller fences it and elects another), and right after an
//! election (the new leader's high watermark is not known yet). Those
//! answers pass by themselves: they go through the crate's retry policy
//! (`retry.rs`).
//!
//! A client that learnt a leader since killed, or whose connection to a
//! restarted node is stuck, kept sending the question there until each
//! try timed out (a replay following a capture through a rolling restart
//! failed so, minutes after every node was back). So from the second try
//! on the question goes through a client of its own, created for it,
//! which learns the cluster afresh.

use std::time::Duration;

use rdkafka::client::{Client, ClientContext};

use super::retry::{retry, Retried};
use super::{KafkaLog, QuickClose};

/// `(low, high)` watermarks of `topic`/`partition`, asking again while the
/// answer is transient, within `bound`: first through `client`, then
/// through a fresh client of `log`.
pub(crate) fn watermarks<C: ClientContext>(
    client: &Client<C>,
    log: &KafkaLog,
    topic: &str,
    partition: i32,
    bound: Duration,
) -> Result<(i64, i64), Retried> {
    let mut fresh: Option<QuickClose> = None;
    retry(bound, |number, per_try| {
        if number == 1 {
            return client.fetch_watermarks(topic, partition, per_try);
        }
        if fresh.is_none() {
            fresh = Some(log.fresh_client()?);
        }
        let fresh = fresh.as_ref().expect("created above");
        rdkafka::consumer::Consumer::fetch_watermarks(&**fresh, topic, partition, per_try)
    })
}
