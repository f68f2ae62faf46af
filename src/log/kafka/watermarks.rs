//! Watermarks asked for while a cluster's metadata is in motion.
//!
//! A replicated cluster answers ListOffsets with "unknown partition", "not
//! leader" or "offset not available" for a while after a topic is created
//! (each Apache Kafka broker learns new partitions from the KRaft
//! controller on its own schedule, so the broker that answered "created"
//! may not be the one asked next), after a partition leader dies (until the
//! controller fences it and elects another), and right after an election
//! (the new leader's high watermark is not known yet). Those answers
//! describe a state that resolves by itself, so they are asked again, in
//! short steps, until the backend's timeout; anything else, or the timeout,
//! is the caller's error.

use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};

/// How long to wait before asking again.
const RETRY_STEP: Duration = Duration::from_millis(50);

/// `(low, high)` watermarks of `topic`/`partition`, asking again while the
/// answer is one of the transient ones (see the module doc), within `timeout`.
pub(crate) fn watermarks<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> KafkaResult<(i64, i64)> {
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        match client.fetch_watermarks(topic, partition, remaining) {
            Err(error) if transient(&error) && Instant::now() + RETRY_STEP < deadline => std::thread::sleep(RETRY_STEP),
            answer => return answer,
        }
    }
}

/// Answers that a cluster gives while its metadata settles.
fn transient(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::FencedLeaderEpoch
                | RDKafkaErrorCode::UnknownLeaderEpoch
                | RDKafkaErrorCode::OffsetNotAvailable
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::KafkaStorageError
        )
    )
}
