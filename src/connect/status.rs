//! How a connector fails: the way a capture or replay does.
//!
//! A connector runs inside timely operators, which cannot return an error,
//! and a panicking worker leaves its peers waiting forever. So a source or
//! sink that meets an error it cannot recover from records it in its
//! [`Status`] (which also makes it a failure of the computation run by
//! [`crate::execute`], so `execute` returns it), and then ends its part of
//! the dataflow: a source releases its capability (its frontier closes, so
//! every probe downstream completes), a sink stops writing. Every other
//! connector, capture and replay of the computation sees that a peer failed
//! and winds down too.
//!
//! A closed frontier after a failure looks like a finished input to the
//! operators downstream. Nothing in `connect` that writes results treats it
//! so: a sink checks whether anything in the computation failed before it
//! reports completion or commits a transaction, and a source before it
//! commits a consumer-group offset.
//!
//! Errors librdkafka reports as transient (a broker connection lost for a
//! moment) are not failures: they are counted in [`Status::warnings`], and
//! each distinct one is printed once to stderr, so nothing is dropped
//! silently.

use crate::error::Error;
use crate::runtime::failure;
use crate::runtime::status::{Stats, Status};

/// An error's message without the variant's prefix ("kafka: ").
pub(crate) fn reason(error: &Error) -> String {
    match error {
        Error::Kafka { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

impl<S: Stats> Status<S> {
    /// Records `error` as this connector's failure (the first one wins),
    /// its message prefixed by `what` (e.g. "kafka sink to topic 'out'")
    /// unless it already names the topic on its own (or `what` is empty).
    pub(crate) fn fail(&self, what: &str, error: Error) {
        let error = match error {
            Error::MissingTopic(_) => error,
            other if what.is_empty() => other,
            other => other.within(what),
        };
        self.failure().record("connector failed", error);
    }

    /// Whether this connector, or anything else in the computation of the
    /// calling worker, has failed: a closed input frontier is then no end.
    pub(crate) fn failed_anywhere(&self) -> bool {
        self.is_failed() || failure::peer_failed()
    }
}
