"""The independent client of the average_temp chaos test
(tests/pipeline_chaos.rs): kafka-python writes readings and reads the
output back with read_committed.

    python chaos_temps.py produce BROKERS INPUT READINGS BATCH PAUSE_MS SEED
    python chaos_temps.py check BROKERS INPUT OUTPUT INTERVAL_MS

produce: reading i is "sensor-<i % 9> <temperature>" in partition i % 3,
with Kafka timestamp BASE + 10 i, BASE the start's second (so each
partition's timestamps increase and a 1000 ms bucket holds 100 readings),
in flushed batches. Timestamps are recent: the broker's time-based
retention (7 days by default) deletes older ones.
check: per bucket of the input's timestamps, the output holds exactly one
record (key: the bucket's start in ms), whose count equals the bucket's
readings and whose average equals theirs (to the 3 decimals printed).
"""

import collections
import random
import sys
import time

from kafka import KafkaProducer

from chaos_words import read_to_end
from kafka_client import fail, run


def produce(brokers, topic, readings, batch, pause_ms, seed):
    rng = random.Random(seed)
    producer = KafkaProducer(bootstrap_servers=brokers, acks="all", linger_ms=5)
    temperatures = [20.0] * 9
    base_ms = int(time.time()) * 1000
    for start in range(0, readings, batch):
        futures = []
        for i in range(start, min(readings, start + batch)):
            sensor = i % 9
            temperatures[sensor] += rng.uniform(-1, 1)
            value = f"sensor-{sensor} {temperatures[sensor]:.2f}".encode()
            futures.append(producer.send(topic, value=value, partition=i % 3, timestamp_ms=base_ms + 10 * i))
        producer.flush()
        for future in futures:
            future.get(timeout=30)
        time.sleep(pause_ms / 1000)
    producer.close()
    print(f"chaos-produce: {readings} readings")


def check(brokers, input_topic, output_topic, interval_ms):
    interval = int(interval_ms)
    buckets = collections.defaultdict(lambda: [0, 0.0])
    readings = read_to_end(brokers, input_topic, "read_uncommitted", with_timestamps=True)
    for _, _, _, value, timestamp in readings:
        bucket = buckets[timestamp - timestamp % interval]
        bucket[0] += 1
        bucket[1] += float(value.decode().split()[1])
    seen = {}
    for _, _, key, value, _ in read_to_end(brokers, output_topic, "read_committed", with_timestamps=True):
        bucket = int(key.decode())
        if bucket in seen:
            fail(f"bucket {bucket} is in the output twice: {seen[bucket]!r} and {value!r}")
        fields = dict(pair.split("=") for pair in value.decode().split())
        seen[bucket] = (int(fields["records"]), float(fields["average"]))
    for bucket, (count, total) in sorted(buckets.items()):
        if bucket not in seen:
            fail(f"bucket {bucket} ({count} readings) is missing from the output")
        got_count, got_average = seen.pop(bucket)
        if got_count != count or abs(got_average - total / count) > 0.0006:
            fail(f"bucket {bucket}: output {got_count} readings, average {got_average}; input {count}, {total / count:.4f}")
    if seen:
        fail(f"buckets in the output but not in the input: {sorted(seen)[:10]}")
    print(f"chaos-check: ok readings={len(readings)} buckets={len(buckets)}")


def main():
    command = sys.argv[1]
    if command == "produce":
        brokers, topic, readings, batch, pause_ms, seed = sys.argv[2:8]
        produce(brokers, topic, int(readings), int(batch), int(pause_ms), int(seed))
    elif command == "check":
        check(*sys.argv[2:6])
    else:
        fail(f"unknown command {command}")


if __name__ == "__main__":
    run(main)
