//! A topic's partition count, from the broker's metadata, asked in one
//! place: the log's topic checks, the source (at start, while it runs, and
//! to tell a broker gone from one that is only quiet) and the sink all ask
//! it the same way, under the retry policy of `retry.rs`.

use std::time::Duration;

use rdkafka::client::Client;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;

use super::retry::retry;
use crate::error::{Error, Result};

/// The partition count of `topic`, `Ok(None)` if the broker does not know
/// it; an error naming the topic if the broker does not answer within
/// `timeout` or answers with another error for it.
pub(crate) fn partition_count<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<u32>> {
    let metadata = retry(timeout, |_, per_try| client.fetch_metadata(Some(topic), per_try))
        .map_err(|e| Error::kafka_from(format!("no metadata for topic '{topic}' within {timeout:?}"), &e))?;
    let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else { return Ok(None) };
    match entry.error() {
        None => Ok(Some(entry.partitions().len() as u32)),
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => Ok(None),
        Some(error) => {
            let code = RDKafkaErrorCode::from(error);
            Err(Error::kafka_code(format!("topic '{topic}': {code}"), code))
        }
    }
}

/// [`partition_count`] for a topic that must exist: a missing (or
/// partitionless) topic is [`Error::MissingTopic`].
pub(crate) fn existing_partition_count<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<u32> {
    match partition_count(client, topic, timeout)? {
        Some(partitions) if partitions > 0 => Ok(partitions),
        _ => Err(Error::MissingTopic(topic.to_string())),
    }
}
