//! The crate's one reading of librdkafka's error codes.
//!
//! Kafka errors are classified by what a caller can do about them, and in
//! one place, so a retry loop, a replay and a source never disagree: a
//! *transient* answer passes by itself (ask again within the operation's
//! bound); an *undecodable* fetch never will (fail at once, naming the
//! partition); and a consumer's *gone* answers (topic deleted, access
//! refused, offset deleted by retention) end a source. rust-rdkafka's own
//! classes (`RDKafkaError::is_retriable`, `is_fatal`, `txn_requires_abort`)
//! decide for the transactional calls that return them
//! (`connect/transactional/transactions/failure.rs`).

use super::KafkaErrorCode;

/// Whether a broker or client answer `code` describes a state that passes
/// by itself (a leader moving, a broker restarting, a timeout), so asking
/// again later can succeed: [`super::Error::is_retriable`] and the retry
/// policy of the crate's own Kafka calls (`log/kafka/retry.rs`) use it.
pub(crate) fn transient_code(code: KafkaErrorCode) -> bool {
    use KafkaErrorCode as C;
    matches!(
        code,
        C::UnknownPartition
            | C::UnknownTopicOrPartition
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::BrokerNotAvailable
            | C::ReplicaNotAvailable
            | C::FencedLeaderEpoch
            | C::UnknownLeaderEpoch
            | C::OffsetNotAvailable
            | C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::NetworkException
            | C::KafkaStorageError
            | C::OperationTimedOut
            | C::RequestTimedOut
            | C::MessageTimedOut
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::NotController
            | C::NotCoordinator
            | C::CoordinatorNotAvailable
            | C::CoordinatorLoadInProgress
            | C::Resolve
    )
}

/// Consumer errors that say the fetched records cannot be decoded (a
/// compression codec missing from the build, a corrupt batch): no retry
/// fixes them, and librdkafka reports them once and goes on fetching.
pub(crate) fn undecodable(code: KafkaErrorCode) -> bool {
    use KafkaErrorCode as C;
    matches!(code, C::NotImplemented | C::BadCompression | C::BadMessage | C::InvalidRecord | C::InvalidMessage)
}

/// Consumer errors that end a source for good: the records cannot be
/// decoded, the topic is gone or refused, the position was deleted, or
/// librdkafka calls the client failed.
pub(crate) fn ends_a_consumer(code: KafkaErrorCode) -> bool {
    use KafkaErrorCode as C;
    undecodable(code)
        || matches!(
            code,
            C::UnknownTopicOrPartition
                | C::UnknownTopic
                | C::TopicAuthorizationFailed
                | C::GroupAuthorizationFailed
                | C::OffsetOutOfRange
                | C::AutoOffsetReset
                | C::Fatal
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classes_are_disjoint_where_they_must_be() {
        use KafkaErrorCode as C;
        for code in [C::NotImplemented, C::BadCompression, C::InvalidRecord] {
            assert!(undecodable(code) && ends_a_consumer(code) && !transient_code(code), "{code:?}");
        }
        for code in [C::NotLeaderForPartition, C::OperationTimedOut, C::BrokerTransportFailure] {
            assert!(transient_code(code) && !ends_a_consumer(code), "{code:?}");
        }
        // A missing topic passes for a call that waits for a topic it
        // created, and ends a source reading one that was deleted.
        assert!(transient_code(C::UnknownTopicOrPartition) && ends_a_consumer(C::UnknownTopicOrPartition));
    }
}
