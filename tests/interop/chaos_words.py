"""The independent client of the pipeline chaos test (tests/pipeline_chaos.rs):
kafka-python (its own protocol implementation, no librdkafka) writes the
input lines and reads the output back with read_committed.

    python chaos_words.py topics BROKERS INPUT OUTPUT PARTITIONS
    python chaos_words.py produce BROKERS INPUT LINES BATCH PAUSE_MS SEED
    python chaos_words.py check BROKERS INPUT OUTPUT

produce: LINES unique lines ("n<i>" then 1 to 8 words of a small
vocabulary), in flushed batches of BATCH with PAUSE_MS between them, each
acknowledgement checked.
check: reads every input line (the input's true contents, so a record the
producer retried counts as often as it is stored) and every committed
output record, then checks, per word: its counts strictly increase, no
(word, count) repeats, the last count equals its occurrences in the input,
and no output word is absent from the input. Prints one summary line.
"""

import collections
import random
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from kafka_client import create_topic, fail, run

VOCABULARY = [f"w{n}" for n in range(40)]


def line(rng, i):
    return " ".join([f"n{i}"] + [rng.choice(VOCABULARY) for _ in range(rng.randint(1, 8))])


def produce(brokers, topic, lines, batch, pause_ms, seed):
    rng = random.Random(seed)
    producer = KafkaProducer(bootstrap_servers=brokers, acks="all", linger_ms=5)
    size = 0
    for start in range(0, lines, batch):
        values = [line(rng, i).encode() for i in range(start, min(lines, start + batch))]
        size += sum(len(value) for value in values)
        futures = [producer.send(topic, value=value) for value in values]
        producer.flush()
        for future in futures:
            future.get(timeout=30)
        time.sleep(pause_ms / 1000)
    producer.close()
    print(f"chaos-produce: {lines} lines {size} bytes")


def read_to_end(brokers, topic, isolation, limit_s=90.0, with_timestamps=False):
    """Every record of `topic` up to the end offsets asked for at the start
    (the last stable offsets, read_committed), as (partition, offset, key,
    value), plus the timestamp if asked."""
    consumer = KafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False, isolation_level=isolation)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not partitions:
        fail(f"topic {topic} has no partitions")
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    records = []
    deadline = time.time() + limit_s
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        if time.time() > deadline:
            fail(f"topic {topic}: could not read to the end offsets {ends} within {limit_s}s")
        for messages in consumer.poll(timeout_ms=200).values():
            for m in messages:
                if m.offset < ends[TopicPartition(topic, m.partition)]:
                    record = (m.partition, m.offset, m.key, m.value)
                    records.append(record + (m.timestamp,) if with_timestamps else record)
    consumer.close()
    return records


def check(brokers, input_topic, output_topic):
    occurrences = collections.Counter()
    lines = read_to_end(brokers, input_topic, "read_uncommitted")
    for _, _, _, value in lines:
        occurrences.update(value.decode().split())
    output = read_to_end(brokers, output_topic, "read_committed")
    counts = collections.defaultdict(list)
    partition_of = {}
    for partition, offset, key, value in sorted(output, key=lambda r: (r[0], r[1])):
        word = key.decode()
        if partition_of.setdefault(word, partition) != partition:
            fail(f"word {word!r} in partitions {partition_of[word]} and {partition}")
        counts[word].append(int(value.decode()))
    for word, seen in counts.items():
        for before, after in zip(seen, seen[1:]):
            if after <= before:
                what = "repeats" if after == before else "decreases"
                fail(f"word {word!r}: count {what}: {before} then {after} (all: {seen[:20]}...)")
        if word not in occurrences:
            fail(f"word {word!r} is in the output but not in the input")
    for word, expected in occurrences.items():
        last = counts.get(word, [0])[-1]
        if last != expected:
            fail(f"word {word!r}: last count {last}, but it occurs {expected} times in the input")
    print(f"chaos-check: ok lines={len(lines)} words={len(occurrences)} output_records={len(output)}")


def main():
    command = sys.argv[1]
    if command == "topics":
        brokers, input_topic, output_topic, partitions = sys.argv[2:6]
        create_topic(brokers, input_topic, int(partitions))
        # word_count --exactly-once keeps its counts in its output: compacted, no retention.
        create_topic(brokers, output_topic, int(partitions),
                     {"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1"})
    elif command == "produce":
        brokers, topic, lines, batch, pause_ms, seed = sys.argv[2:8]
        produce(brokers, topic, int(lines), int(batch), int(pause_ms), int(seed))
    elif command == "check":
        check(*sys.argv[2:5])
    else:
        fail(f"unknown command {command}")


if __name__ == "__main__":
    run(main)
