//! A topic's id (KIP-516): the one name that changes when a topic is
//! deleted and created again under the same name.
//!
//! Offsets only mean something within one incarnation of a topic: a record
//! at offset 40 of a recreated topic is another record than offset 40 of the
//! old one. A consumer that stored offsets (an exactly-once pipeline's
//! binding) tells the two apart by the topic id, which the broker assigns
//! at creation. rust-rdkafka does not wrap librdkafka's DescribeTopics, the
//! one public call that returns it, so this calls it directly.

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::Consumer;

use super::native_admin::request;
use super::retry::retry;
use super::KafkaLog;
use crate::error::{Error, Result};

/// Kafka's "no id" (a broker before KIP-516 answers with it).
const ZERO_ID: &str = "AAAAAAAAAAAAAAAAAAAAAA";

impl KafkaLog {
    /// The id of `topic` as Kafka's tools print it (base64), or `None` when
    /// the topic does not exist or the broker gives no topic ids (before
    /// Kafka 2.8; a broker that refuses DescribeTopics). Transient errors
    /// are asked again within the backend's timeout, and only then fail.
    pub(crate) fn topic_id(&self, topic: &str) -> Result<Option<String>> {
        let client = self.metadata_client()?;
        let name = CString::new(topic).map_err(|_| Error::Config(format!("topic '{topic}': name holds a NUL byte")))?;
        match retry(self.timeout, |_, per_try| describe(client.client().native_ptr(), &name, per_try)) {
            Ok(id) => Ok(id),
            Err(retried) if retried.ran_out() => {
                Err(Error::kafka_from(format!("topic '{topic}': no topic id within {:?}", self.timeout), &retried))
            }
            Err(_) => Ok(None),
        }
    }
}

/// One DescribeTopics request for `topic`, answered within `timeout`.
fn describe(
    client: *mut rd::rd_kafka_t,
    topic: &CStr,
    timeout: Duration,
) -> rdkafka::error::KafkaResult<Option<String>> {
    let op = rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS;
    // SAFETY: `client` is valid while the caller's client lives; the topic
    // collection lives until after the request returned, and the result
    // event is read only inside `read_answer`.
    unsafe {
        let mut names = [topic.as_ptr()];
        let topics = rd::rd_kafka_TopicCollection_of_topic_names(names.as_mut_ptr(), 1);
        let answer = request(
            client,
            op,
            timeout,
            |options, queue| rd::rd_kafka_DescribeTopics(client, topics, options, queue),
            |event| read_answer(event),
        );
        rd::rd_kafka_TopicCollection_destroy(topics);
        answer
    }
}

/// The topic id in a DescribeTopics result event.
///
/// # Safety
/// `event` must be a live event from a DescribeTopics request.
unsafe fn read_answer(event: *mut rd::rd_kafka_event_t) -> rdkafka::error::KafkaResult<Option<String>> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    let result = rd::rd_kafka_event_DescribeTopics_result(event);
    if result.is_null() {
        return Ok(None);
    }
    let mut count = 0usize;
    let descriptions = rd::rd_kafka_DescribeTopics_result_topics(result, &mut count);
    if descriptions.is_null() || count == 0 {
        return Ok(None);
    }
    let description = *descriptions;
    let error = rd::rd_kafka_TopicDescription_error(description);
    if !error.is_null() {
        let code: RDKafkaErrorCode = rd::rd_kafka_error_code(error).into();
        return match code {
            RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => Ok(None),
            code => Err(KafkaError::AdminOp(code)),
        };
    }
    let id = rd::rd_kafka_TopicDescription_topic_id(description);
    if id.is_null() {
        return Ok(None);
    }
    let text = rd::rd_kafka_Uuid_base64str(id);
    if text.is_null() {
        return Ok(None);
    }
    let text = CStr::from_ptr(text).to_string_lossy().into_owned();
    Ok((text != ZERO_ID).then_some(text))
}
