//! How a connector fails: the way a capture or replay does.
//!
//! A connector runs inside timely operators, which cannot return an error,
//! and a panicking worker leaves its peers waiting forever. So a source or
//! sink that meets an error it cannot recover from records it in its
//! [`ConnectorStatus`] (a failure slot, which also makes it a failure of
//! the computation run by [`crate::execute`], so `execute`
//! returns it), and then ends its part of the dataflow: a source releases
//! its capability (its frontier closes, so every probe downstream completes),
//! a sink stops writing. Every other connector, capture and replay of the
//! computation sees that a peer failed and winds down too.
//!
//! A closed frontier after a failure looks like a finished input to the
//! operators downstream. Nothing in `connect` that writes results treats it
//! so: a sink checks whether anything in the computation failed before it
//! reports completion or commits a transaction, and a source before it
//! commits a consumer-group offset.
//!
//! Errors librdkafka reports as transient (a broker connection lost for a
//! moment) are not failures: they are counted, and each distinct one is
//! printed once to stderr, so nothing is dropped silently.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::runtime::failure::{self, FailureSlot};

/// An error's message without the variant's prefix ("kafka: ").
pub(crate) fn reason(error: &Error) -> String {
    match error {
        Error::Kafka { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

#[derive(Default)]
struct Shared {
    failure: FailureSlot,
    warnings: AtomicU64,
    printed: Mutex<HashSet<String>>,
    complete: AtomicBool,
}

/// The failure and warnings of one source or sink, shared by every worker's
/// part of it (clones share).
#[derive(Clone, Default)]
pub struct ConnectorStatus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ConnectorStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorStatus")
            .field("failed", &self.is_failed())
            .field("warnings", &self.warnings())
            .field("complete", &self.is_complete())
            .finish()
    }
}

impl ConnectorStatus {
    /// Records `error` as this connector's failure (the first one wins),
    /// its message prefixed by `what` (e.g. "kafka sink to topic 'out'")
    /// unless it already names the topic on its own (or `what` is empty).
    pub(crate) fn fail(&self, what: &str, error: Error) {
        let error = match error {
            Error::MissingTopic(_) => error,
            other if what.is_empty() => other,
            other => other.within(what),
        };
        self.shared.failure.record("connector failed", error);
    }

    /// Counts a transient error and prints it the first time it is seen.
    pub(crate) fn warn(&self, message: String) {
        self.shared.warnings.fetch_add(1, Ordering::Relaxed);
        let mut printed = self.shared.printed.lock().unwrap_or_else(|p| p.into_inner());
        if printed.len() < 64 && printed.insert(message.clone()) {
            eprintln!("timely-kafka: warning: {message}");
        }
    }

    /// Whether this connector, or anything else in the computation of the
    /// calling worker, has failed: a closed input frontier is then no end.
    pub(crate) fn failed_anywhere(&self) -> bool {
        self.is_failed() || failure::peer_failed()
    }

    pub(crate) fn set_complete(&self) {
        self.shared.complete.store(true, Ordering::Release);
    }

    /// Whether the connector failed (without handling the failure).
    pub fn is_failed(&self) -> bool {
        self.shared.failure.is_failed()
    }

    /// The failure's message, if any. Reading it handles the failure (see
    /// [the crate's failure rules](crate#failures)).
    pub fn error(&self) -> Option<String> {
        self.shared.failure.take_message()
    }

    /// Transient errors seen (each distinct one was printed once).
    pub fn warnings(&self) -> u64 {
        self.shared.warnings.load(Ordering::Relaxed)
    }

    /// Whether the connector reached its end without any failure in the
    /// computation (a sink: its input ended and everything was written).
    pub fn is_complete(&self) -> bool {
        self.shared.complete.load(Ordering::Acquire)
    }
}
