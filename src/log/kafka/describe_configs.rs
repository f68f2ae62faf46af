//! A topic's or a broker's configuration (DescribeConfigs), asked on the
//! shared metadata client.
//!
//! An exactly-once start checks the settings of its progress topic, its
//! changelogs and its input (a retention that would delete commits, a
//! compacted input) and the broker's `transaction.max.timeout.ms`: four
//! questions on every start. Asked through
//! rust-rdkafka's `AdminClient` each cost a client of its own and a 100 ms
//! wait in its drop (see `native_admin.rs`); asked here they cost one round
//! trip on connections that are already up.

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};

use super::native_admin::request;
use super::retry::retry;
use super::KafkaLog;
use crate::error::{Error, Result};

impl KafkaLog {
    /// The topic-level configuration of `topic` (`None`: the topic does not
    /// exist, or the broker did not describe it). Transient errors are
    /// asked again within the backend's timeout, and only then fail.
    pub(crate) fn topic_configs(&self, topic: &str) -> Result<Option<Vec<(String, String)>>> {
        let name = CString::new(topic).map_err(|_| Error::Config(format!("topic '{topic}': name holds a NUL byte")))?;
        self.describe(
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            &name,
            &format!("topic '{topic}'"),
            self.timeout,
        )
    }

    /// The configuration of one broker of the cluster (the first the
    /// metadata lists), within `timeout`. `None`: no broker, or it did not
    /// describe itself (a broker may refuse a principal without the
    /// cluster's DescribeConfigs permission: not an error).
    pub(crate) fn broker_configs(&self, timeout: Duration) -> Result<Option<Vec<(String, String)>>> {
        let client = self.metadata_client()?;
        let metadata = retry(timeout, |_, per_try| client.fetch_metadata(None, per_try))
            .map_err(|e| Error::kafka_from(format!("brokers did not answer within {timeout:?}"), &e))?;
        let Some(broker) = metadata.brokers().first().map(|b| b.id()) else { return Ok(None) };
        let name = CString::new(broker.to_string()).unwrap_or_default();
        let kind = rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_BROKER;
        Ok(self.describe(kind, &name, &format!("broker {broker}"), timeout).ok().flatten())
    }

    /// Describes resource `name` of `kind` within `bound`; `what` names it
    /// in errors.
    fn describe(
        &self,
        kind: rd::rd_kafka_ResourceType_t,
        name: &CStr,
        what: &str,
        bound: Duration,
    ) -> Result<Option<Vec<(String, String)>>> {
        let client = self.metadata_client()?;
        retry(bound, |_, per_try| describe_configs(client.client().native_ptr(), kind, name, per_try))
            .map_err(|e| Error::kafka_from(format!("describe {what}"), &e))
    }
}

/// One DescribeConfigs request for resource `name` of `kind`, answered
/// within `timeout`.
fn describe_configs(
    client: *mut rd::rd_kafka_t,
    kind: rd::rd_kafka_ResourceType_t,
    name: &CStr,
    timeout: Duration,
) -> KafkaResult<Option<Vec<(String, String)>>> {
    let op = rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS;
    // SAFETY: `client` is valid while the caller's client lives; librdkafka
    // copies the resource when the request is sent, and it is destroyed
    // after; the result event is read only inside `read_configs`.
    unsafe {
        let resource = rd::rd_kafka_ConfigResource_new(kind, name.as_ptr());
        let mut resources = [resource];
        let answer = request(
            client,
            op,
            timeout,
            |options, queue| rd::rd_kafka_DescribeConfigs(client, resources.as_mut_ptr(), 1, options, queue),
            |event| read_configs(event),
        );
        rd::rd_kafka_ConfigResource_destroy(resource);
        answer
    }
}

/// The entries with a value in a DescribeConfigs result event.
///
/// # Safety
/// `event` must be a live event from a DescribeConfigs request.
unsafe fn read_configs(event: *mut rd::rd_kafka_event_t) -> KafkaResult<Option<Vec<(String, String)>>> {
    let result = rd::rd_kafka_event_DescribeConfigs_result(event);
    if result.is_null() {
        return Ok(None);
    }
    let mut count = 0usize;
    let resources = rd::rd_kafka_DescribeConfigs_result_resources(result, &mut count);
    if resources.is_null() || count == 0 {
        return Ok(None);
    }
    let resource = *resources;
    let error: RDKafkaErrorCode = rd::rd_kafka_ConfigResource_error(resource).into();
    match error {
        RDKafkaErrorCode::NoError => {}
        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => return Ok(None),
        code => return Err(KafkaError::AdminOp(code)),
    }
    let mut entries = 0usize;
    let configs = rd::rd_kafka_ConfigResource_configs(resource, &mut entries);
    let mut out = Vec::with_capacity(entries);
    for index in 0..entries {
        let entry = *configs.add(index);
        let (name, value) = (rd::rd_kafka_ConfigEntry_name(entry), rd::rd_kafka_ConfigEntry_value(entry));
        if name.is_null() || value.is_null() {
            continue;
        }
        out.push((
            CStr::from_ptr(name).to_string_lossy().into_owned(),
            CStr::from_ptr(value).to_string_lossy().into_owned(),
        ));
    }
    Ok(Some(out))
}
