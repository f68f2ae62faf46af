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
//!
//! A client also keeps the leader it last learnt: after a leader is killed,
//! librdkafka sent the question to the dead node until it timed out, every
//! time (measured on a 3-node cluster: a minute of timeouts after the new
//! leader was elected). So each try is bounded to a few seconds, and before
//! asking again the client refreshes the topic's metadata.

use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};

/// How long to wait before asking again.
const RETRY_STEP: Duration = Duration::from_millis(50);
/// The longest one try may take, so a question sent to a dead leader is
/// asked again of the new one within the caller's timeout.
const TRY_BOUND: Duration = Duration::from_secs(5);

/// `(low, high)` watermarks of `topic`/`partition`, asking again while the
/// answer is one of the transient ones (see the module doc), within `timeout`.
pub(crate) fn watermarks<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> KafkaResult<(i64, i64)> {
    let deadline = Instant::now() + timeout;
    let bounded = || deadline.saturating_duration_since(Instant::now()).min(TRY_BOUND).max(Duration::from_millis(1));
    loop {
        match client.fetch_watermarks(topic, partition, bounded()) {
            Err(error) if transient(&error) && Instant::now() + RETRY_STEP < deadline => {
                std::thread::sleep(RETRY_STEP);
                // Learn the current leader (an error here shows in the next try).
                let _ = client.fetch_metadata(Some(topic), bounded());
            }
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
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
        )
    )
}
