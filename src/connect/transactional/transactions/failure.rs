//! Which of librdkafka's classes a transactional error falls in, and the
//! one line it ends the sink with.
//!
//! The class decides what the writer does next (see the parent module):
//! an abortable failure restarts the transaction, a fatal one stops the
//! sink. librdkafka reports both "a newer instance fenced this one" and
//! "the broker aborted this transaction for outliving
//! `transaction.timeout.ms`" as one code (`__FENCED`: the coordinator bumps
//! the epoch either way); the writer knows when its transaction began, so
//! its message tells the two apart by the transaction's age.

use rdkafka::error::{KafkaError, RDKafkaError, RDKafkaErrorCode};

use super::TransactionalWriter;

/// What went wrong in a transaction, by librdkafka's class.
pub(super) enum Failure {
    Abortable(String),
    Fatal(String),
}

impl Failure {
    pub(super) fn into_reason(self) -> String {
        match self {
            Failure::Abortable(reason) | Failure::Fatal(reason) => reason,
        }
    }
}

/// The transactional error inside `error`, if it is one.
pub(super) fn classify(error: &KafkaError) -> Option<&RDKafkaError> {
    match error {
        KafkaError::Transaction(inner) => Some(inner),
        _ => None,
    }
}

impl TransactionalWriter {
    /// [`fatal_or_abortable`], telling a fenced writer (a newer instance
    /// started) from a transaction the broker aborted for its age.
    pub(super) fn failure(&self, error: &KafkaError) -> Failure {
        let fenced = classify(error).is_some_and(|inner| {
            matches!(
                inner.code(),
                RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch
            )
        });
        if !fenced {
            return fatal_or_abortable(error);
        }
        match self.begun.get().map(|begun| begun.elapsed()) {
            Some(age) if age >= self.transaction_timeout => Failure::Fatal(format!(
                "the broker aborted the transaction: it was open {:.1}s, longer than transaction.timeout.ms ({:?}) \
                 (a worker stalled, or the broker was slow); a restart resumes from the last commit: {error}",
                age.as_secs_f64(),
                self.transaction_timeout
            )),
            _ => {
                super::super::metrics::fenced(&self.output);
                Failure::Fatal(format!("fenced by a newer instance of this pipeline (this one is a zombie): {error}"))
            }
        }
    }
}

/// Fatal (fenced, misconfigured) or unclassified errors stop the sink;
/// those librdkafka says require an abort, and plain produce errors (the
/// record was never part of a commit), restart the transaction.
fn fatal_or_abortable(error: &KafkaError) -> Failure {
    match classify(error) {
        Some(inner) if inner.is_fatal() => Failure::Fatal(format!("fatal transaction error: {error}")),
        Some(inner) if inner.txn_requires_abort() => Failure::Abortable(error.to_string()),
        Some(_) => Failure::Fatal(format!("transaction error: {error}")),
        None => match error {
            KafkaError::MessageProduction(_) => Failure::Abortable(error.to_string()),
            _ => Failure::Fatal(error.to_string()),
        },
    }
}
