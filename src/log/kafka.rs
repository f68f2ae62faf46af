//! The Kafka backend.

use crate::error::{Error, Result};

/// Kafka log backend.
pub struct KafkaLog;

impl KafkaLog {
    /// Connects to `brokers`.
    pub fn new(_brokers: &str, _properties: &[(String, String)]) -> Result<Self> {
        Err(Error::Config("the Kafka backend is not built yet; omit --brokers to use the file log".into()))
    }
}

impl crate::log::LogBackend for KafkaLog {
    fn name(&self) -> &'static str {
        "kafka"
    }
    fn topic_info(&self, _: &str) -> Result<Option<crate::log::TopicInfo>> {
        unreachable!()
    }
    fn create_topic(&self, _: &str, _: u32, _: crate::CodecId, _: bool) -> Result<()> {
        unreachable!()
    }
    fn writer(&self, _: &str, _: u32) -> Result<Box<dyn crate::log::PartitionWriter>> {
        unreachable!()
    }
    fn reader(&self, _: &str, _: u32, _: u64) -> Result<Box<dyn crate::log::PartitionReader>> {
        unreachable!()
    }
}
