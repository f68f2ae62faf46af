//! Where [`SourceEnd::CurrentEnd`](super::SourceEnd::CurrentEnd) stops: the
//! high watermark the broker's *Fetch* responses report, never ListOffsets.
//!
//! Why: a partition's end can be asked for in two ways. ListOffsets(latest)
//! is a separate request, and brokers have had bugs in it: tansu 0.6
//! under-reports it after batched produces (3552 for a partition holding
//! 3600 records), and a source trusting it silently dropped the rest. Every
//! Fetch response carries the partition's high watermark too, the offset the
//! broker will hand out next, and that is the number a consumer actually
//! reads up to; librdkafka caches the latest one per partition
//! (`rd_kafka_get_watermark_offsets`, not wrapped by rdkafka 0.39) and raises
//! its end-of-partition event (`enable.partition.eof`) when the consumer's
//! position reaches it.
//!
//! So for `CurrentEnd` a partition's end is unknown when it is assigned. The
//! first time the source receives anything for it (a record, or the
//! end-of-partition event), a fetch response has arrived and the cached high
//! watermark is read once: that is the partition's end, fixed from then on.
//! Records at or past it are not delivered; the partition is done once the
//! record just before it has been delivered, or at the end-of-partition event
//! (which also covers an empty partition, and an end whose last offsets hold
//! no deliverable record, such as transaction markers). Every record stored
//! when the partition was assigned is below that end, because the fetch
//! happens after the assignment.

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

/// The high watermark librdkafka last saw in a Fetch response for
/// `topic`/`partition`, or `None` while no fetch response has arrived.
/// Local and immediate: no request is sent.
pub(super) fn fetched_high_watermark<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: u32,
) -> Option<u64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `consumer` is borrowed, the
    // topic is a NUL-terminated string that outlives the call, and librdkafka
    // only writes the two i64 out-parameters.
    let error = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition as i32,
            &mut low,
            &mut high,
        )
    };
    // Before the first fetch response the cache holds RD_KAFKA_OFFSET_INVALID (-1001).
    (error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high as u64)
}
