"""What both interop checks share: kafka-python clients set up for tansu and
for librdkafka's mock cluster, topic creation, batched produce, and reading
a topic back without trusting ListOffsets.

kafka-python is a Kafka client with its own protocol implementation (no
librdkafka), so what it writes and reads checks our connectors against the
protocol, not against librdkafka's view of it.
"""

import os
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

# tansu answers a fetch only when its max wait expires: keep it short.
FETCH_WAIT_MS = 5


def security():
    """kafka-python's settings for the librdkafka properties file named by
    INTEROP_CLIENT_PROPERTIES (a secured listener: SASL_SSL with PLAIN or
    SCRAM, or SSL with a client certificate); none when it is unset."""
    path = os.environ.get("INTEROP_CLIENT_PROPERTIES")
    if not path:
        return {}
    properties = {}
    with open(path) as lines:
        for line in lines:
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                properties[key.strip()] = value.strip()
    names = {
        "security.protocol": "security_protocol",
        "sasl.mechanism": "sasl_mechanism",
        "sasl.mechanisms": "sasl_mechanism",
        "sasl.username": "sasl_plain_username",
        "sasl.password": "sasl_plain_password",
        "ssl.ca.location": "ssl_cafile",
        "ssl.certificate.location": "ssl_certfile",
        "ssl.key.location": "ssl_keyfile",
    }
    unknown = sorted(set(properties) - set(names))
    if unknown:
        fail(f"{path}: no kafka-python setting for {', '.join(unknown)}")
    return {names[key]: value for key, value in properties.items()}


def fail(reason):
    """Exits non-zero with a one-line reason."""
    print(f"interop: FAIL: {reason}", file=sys.stderr)
    sys.exit(1)


def create_topic(brokers, topic, partitions, configs=None):
    admin = KafkaAdminClient(bootstrap_servers=brokers, **security())
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                      topic_configs=configs or {})])
    finally:
        admin.close()
    # Wait until the topic's partitions are visible to clients.
    consumer = KafkaConsumer(bootstrap_servers=brokers, **security())
    try:
        deadline = time.time() + 30
        while len(consumer.partitions_for_topic(topic) or ()) < partitions:
            if time.time() > deadline:
                fail(f"topic {topic} did not appear with {partitions} partitions")
            time.sleep(0.1)
    finally:
        consumer.close()


def produce_batches(brokers, topic, records, batches):
    """Sends `records` (dicts with value, key, partition, timestamp_ms) in
    `batches` separately flushed batches (what makes tansu's ListOffsets
    short), checking every acknowledgement."""
    producer = KafkaProducer(bootstrap_servers=brokers, acks="all", linger_ms=5, **security())
    size = max(1, -(-len(records) // batches))
    for start in range(0, len(records), size):
        futures = [producer.send(topic, **record) for record in records[start:start + size]]
        producer.flush()
        for future in futures:
            future.get(timeout=30)
    producer.close()


def read_all(brokers, topic, expected, idle_s=2.0, limit_s=60.0):
    """Reads `topic` from the beginning until `expected` records have arrived
    and none more for `idle_s` (so extras are seen too), or `limit_s` passed.
    Returns the records as (key, value, partition, offset) tuples."""
    consumer = KafkaConsumer(
        bootstrap_servers=brokers,
        enable_auto_commit=False,
        **security(),
        fetch_max_wait_ms=FETCH_WAIT_MS,
    )
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not partitions:
        fail(f"topic {topic} has no partitions")
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records = []
    start = last = time.time()
    while time.time() - start < limit_s:
        batch = consumer.poll(timeout_ms=100)
        for messages in batch.values():
            records.extend((m.key, m.value, m.partition, m.offset) for m in messages)
            last = time.time()
        if len(records) >= expected and time.time() - last > idle_s:
            break
    consumer.close()
    return records


def field(line, key):
    """The value of `key=` in a `k=v k=v` line."""
    for pair in line.split():
        if pair.startswith(key + "="):
            return pair[len(key) + 1:]
    fail(f"no {key}= in line {line!r}")


def summary(output, prefix):
    """The last line of `output` starting with `prefix` (an example's summary)."""
    lines = [line for line in output.splitlines() if line.startswith(prefix)]
    if not lines:
        fail(f"no line starting with {prefix!r} in the example's output")
    return lines[-1]


def run(main):
    """Runs `main`, turning any client error into a one-line failure."""
    try:
        main()
    except Exception as error:  # noqa: BLE001 - the reason is all CI needs
        fail(f"{type(error).__name__}: {error}")
