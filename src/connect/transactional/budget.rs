//! A transaction's time budget. The broker aborts a transaction older than
//! `transaction.timeout.ms` (and refuses a value above its
//! `transaction.max.timeout.ms`), while a commit may itself take the
//! pipeline's `timeout`: these checks keep every transaction, early
//! outputs included, inside what the broker allows.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::log::kafka::KafkaLog;

/// The longest a transaction holding early outputs may stay open: its
/// commit (or abort) may then take `timeout`, and all of it must end well
/// within `transaction.timeout.ms`, past which the broker aborts it.
pub(super) fn max_open(transaction_timeout: Duration, timeout: Duration) -> Duration {
    transaction_timeout.saturating_sub(timeout) / 2
}

/// Refuses a configuration whose commits may outlive their transactions.
pub(super) fn check_budget(id: &str, transaction_timeout: Duration, timeout: Duration) -> Result<()> {
    if timeout >= transaction_timeout {
        return Err(Error::Config(format!(
            "exactly-once sink (transactional.id '{id}'): timeout {timeout:?} must be below transaction.timeout.ms \
             ({transaction_timeout:?}): a commit may take the whole timeout, and the broker aborts a transaction \
             older than transaction.timeout.ms"
        )));
    }
    Ok(())
}

/// Refuses a `transaction.timeout.ms` above the broker's
/// `transaction.max.timeout.ms`. A broker that does not describe its
/// configuration is not checked here: `init_transactions` then reports the
/// same problem as a fatal error.
pub(super) fn check_transaction_timeout(
    log: &KafkaLog,
    transaction: Duration,
    timeout: Duration,
    what: &str,
) -> Result<()> {
    let configs = log.broker_configs(timeout).map_err(|e| Error::kafka(format!("{what}: {e}")))?;
    let maximum = configs
        .unwrap_or_default()
        .into_iter()
        .find(|(key, _)| key == "transaction.max.timeout.ms")
        .and_then(|(_, value)| value.parse::<u128>().ok());
    match maximum {
        Some(maximum) if transaction.as_millis() > maximum => Err(Error::Config(format!(
            "{what}: transaction.timeout.ms {} is above the broker's transaction.max.timeout.ms {maximum}",
            transaction.as_millis()
        ))),
        _ => Ok(()),
    }
}
