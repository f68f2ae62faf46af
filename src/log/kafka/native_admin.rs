//! One admin request through a client the crate already holds.
//!
//! rust-rdkafka's `AdminClient` is a client of its own: it opens its own
//! broker connections, and its drop waits for its polling thread, which
//! wakes in 100 ms steps — 100 ms for every question asked through a new
//! one (measured: an exactly-once restart spent 0.1 s of its 0.5 s in one
//! DescribeConfigs). librdkafka's admin calls accept any client handle and
//! a queue of the caller's: [`request`] asks on the shared metadata
//! client's connections, waits for the one result event on a queue of its
//! own, and destroys what it made before returning. rust-rdkafka does not
//! wrap DescribeTopics at all (`topic_id.rs` needs it).

use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};

/// Sends one admin request of kind `op` on `client` (`send` gets the
/// options, with `timeout` as the request timeout, and the queue to answer
/// on), waits for its result event and reads it with `read`.
///
/// # Safety
/// `client` must be a live client handle for the whole call; `send` must
/// issue exactly one admin request of kind `op` with the options and queue
/// it is given, and `read` may use the event only while it is called.
pub(super) unsafe fn request<T>(
    client: *mut rd::rd_kafka_t,
    op: rd::rd_kafka_admin_op_t,
    timeout: Duration,
    send: impl FnOnce(*mut rd::rd_kafka_AdminOptions_t, *mut rd::rd_kafka_queue_t),
    read: impl FnOnce(*mut rd::rd_kafka_event_t) -> KafkaResult<T>,
) -> KafkaResult<T> {
    let timeout_ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
    let queue = rd::rd_kafka_queue_new(client);
    let options = rd::rd_kafka_AdminOptions_new(client, op);
    rd::rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, std::ptr::null_mut(), 0);
    send(options, queue);
    // The request's own timeout ends it; the margin covers the reply.
    let event = rd::rd_kafka_queue_poll(queue, timeout_ms.saturating_add(1000));
    let answer = if event.is_null() {
        Err(KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut))
    } else {
        let error = rd::rd_kafka_event_error(event);
        let answer = if error != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Err(KafkaError::AdminOp(error.into()))
        } else {
            read(event)
        };
        rd::rd_kafka_event_destroy(event);
        answer
    };
    rd::rd_kafka_AdminOptions_destroy(options);
    rd::rd_kafka_queue_destroy(queue);
    answer
}
