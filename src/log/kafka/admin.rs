//! Topic administration: metadata, creation, deletion, emptiness.
//!
//! Creation and deletion are asynchronous in Kafka: a created topic is usable
//! only once its partitions show in the metadata, so both wait (bounded by
//! the backend's timeout) until the metadata agrees.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::client_errors::ClientErrors;
use super::retry::retry;
use super::watermarks::watermarks;
use super::KafkaLog;
use crate::error::{Error, Result};

impl KafkaLog {
    pub(super) fn partition_count(&self, client: &BaseConsumer<ClientErrors>, topic: &str) -> Result<Option<u32>> {
        super::metadata::partition_count(client.client(), topic, self.timeout)
    }

    pub(super) fn wait_for_partitions(&self, topic: &str, wanted: Option<u32>) -> Result<()> {
        let client = self.metadata_client()?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let count = self.partition_count(&client, topic)?;
            let ready = match wanted {
                Some(wanted) => count.is_some_and(|n| n >= wanted),
                None => count.is_none(),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let what = match wanted {
                    Some(n) => format!("to appear with {n} partitions"),
                    None => "to be deleted".to_string(),
                };
                return Err(Error::kafka(format!("topic '{topic}' did not {what} within {:?}", self.timeout)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(super) fn delete_topic(&self, topic: &str) -> Result<()> {
        let admin = self.admin()?;
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = futures_executor::block_on(admin.delete_topics(&[topic], &options))
            .map_err(|e| Error::kafka_from(format!("delete topic '{topic}'"), &e))?;
        for result in results {
            if let Err((name, code)) = result {
                return Err(Error::kafka_code(format!("delete topic '{name}': {code}"), code));
            }
        }
        self.wait_for_partitions(topic, None)
    }

    pub(super) fn create(&self, topic: &str, partitions: u32) -> Result<()> {
        self.create_with_configs(topic, partitions, &[])
    }

    /// Creates `topic` with topic-level `configs` (e.g. `cleanup.policy`).
    /// Transient answers (a controller moving in a rolling restart, a
    /// timeout) are asked again within the backend's timeout; a try that
    /// created the topic but lost its answer finds it existing, which is
    /// success.
    pub(crate) fn create_with_configs(&self, topic: &str, partitions: u32, configs: &[(&str, &str)]) -> Result<()> {
        let admin = self.admin()?;
        let created = retry(self.timeout, |_, per_try| {
            let options = AdminOptions::new()
                .operation_timeout(Some(per_try))
                .request_timeout(Some(rdkafka::util::Timeout::After(per_try)));
            let replication = TopicReplication::Fixed(self.replication_factor);
            let mut new_topic = NewTopic::new(topic, partitions as i32, replication);
            for (key, value) in configs {
                new_topic = new_topic.set(key, value);
            }
            for result in futures_executor::block_on(admin.create_topics(&[new_topic], &options))? {
                match result {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((_, code)) => return Err(KafkaError::AdminOp(code)),
                }
            }
            Ok(())
        });
        created.map_err(|e| {
            Error::kafka_from(
                format!(
                    "create topic '{topic}' with {partitions} partitions (if the broker does not support \
                     CreateTopics, create the topic yourself)"
                ),
                &e,
            )
        })?;
        self.wait_for_partitions(topic, Some(partitions))
    }

    pub(super) fn has_data(&self, client: &BaseConsumer<ClientErrors>, topic: &str, partitions: u32) -> Result<bool> {
        for partition in 0..partitions {
            let (low, high) = self.watermarks_with(client, topic, partition)?;
            if high > low {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The first and the next offset of `topic`/`partition`, asked through
    /// the shared metadata client (its connections are up: no client to
    /// start), within the backend's timeout.
    pub(crate) fn watermarks(&self, topic: &str, partition: u32) -> Result<(u64, u64)> {
        let client = self.metadata_client()?;
        self.watermarks_with(&client, topic, partition)
    }

    fn watermarks_with(&self, client: &BaseConsumer<ClientErrors>, topic: &str, partition: u32) -> Result<(u64, u64)> {
        let (low, high) = watermarks(client.client(), self, topic, partition as i32, self.timeout).map_err(|e| {
            Error::kafka_from(
                format!("topic '{topic}' partition {partition}: no watermarks within {:?}", self.timeout),
                &e,
            )
        })?;
        Ok((low.max(0) as u64, high.max(0) as u64))
    }
}
