"""Interop check for average_temp: kafka-python writes temperature readings
(and a few unparseable records) with chosen Kafka timestamps; average_temp's
per-second buckets, total count, average and bad count must match.

    python temps.py produce BROKERS TOPIC       writes, prints nothing
    python temps.py check < output             compares average_temp's output
    python temps.py lines                      prints the records as KEY|VALUE lines
                                               (for Kafka's Java ConsoleProducer)
    python temps.py check-stored STORED < output
                                               compares average_temp's output with the
                                               records as stored (STORED: Java
                                               ConsoleConsumer lines CreateTime:MS<TAB>VALUE)

The data is a pure function of the seed, so `check` recomputes it. The Java
console producer cannot choose record timestamps (the broker's clock
stamps them), so its check takes the buckets from the timestamps stored.
"""

import random
import sys

from kafka_client import create_topic, fail, field, produce_batches, run, summary

PARTITIONS = 3
SENSORS = 10
READINGS = 9000
PER_BUCKET = 1000  # readings per one-second bucket
BAD = 7
BASE_MS = 1_700_000_000_000  # a whole second: bucket b starts at BASE_MS + 1000 b


def readings():
    """(sensor, temperature in hundredths, bucket) per reading; deterministic."""
    rng = random.Random(9)
    hundredths = [2000] * SENSORS
    out = []
    for i in range(READINGS):
        sensor = i % SENSORS
        hundredths[sensor] += rng.randint(-100, 100)
        out.append((sensor, hundredths[sensor], i // PER_BUCKET))
    return out


def decimal(hundredths):
    """21.37 for 2137, -0.05 for -5: exact, no float rounding."""
    sign = "-" if hundredths < 0 else ""
    return f"{sign}{abs(hundredths) // 100}.{abs(hundredths) % 100:02d}"


def records():
    out = []
    for sensor, t, bucket in readings():
        out.append({
            "key": f"sensor-{sensor}".encode(),
            "value": f"sensor-{sensor} {decimal(t)}".encode(),
            "partition": sensor % PARTITIONS,
            "timestamp_ms": BASE_MS + 1000 * bucket,
        })
    last_ms = BASE_MS + 1000 * ((READINGS - 1) // PER_BUCKET)
    for b in range(BAD):
        out.append({"key": b"bad", "value": b"not a reading", "partition": b % PARTITIONS, "timestamp_ms": last_ms})
    return out


def expected():
    """Per bucket start (ms): (count, sum in hundredths)."""
    buckets = {}
    for _, t, bucket in readings():
        count, total = buckets.get(BASE_MS + 1000 * bucket, (0, 0))
        buckets[BASE_MS + 1000 * bucket] = (count + 1, total + t)
    return buckets


def close(printed, hundredths, count):
    """average_temp prints averages to 3 decimals: equal up to that."""
    return abs(float(printed) - hundredths / 100 / count) <= 0.0005 + 1e-9


def stored_expected(stored):
    """Per bucket start (ms): (count, sum in hundredths), from stored records."""
    buckets = {}
    readings = 0
    for line in stored.splitlines():
        if not line.startswith("CreateTime:"):
            continue
        stamp, _, value = line[len("CreateTime:"):].partition("\t")
        parts = value.split()
        if len(parts) != 2 or not parts[0].startswith("sensor-"):
            continue
        whole, _, frac = parts[1].partition(".")
        hundredths = int(whole.lstrip("-") or "0") * 100 + int(frac)
        if whole.startswith("-"):
            hundredths = -hundredths
        bucket = int(stamp) - int(stamp) % 1000
        count, total = buckets.get(bucket, (0, 0))
        buckets[bucket] = (count + 1, total + hundredths)
        readings += 1
    if readings != READINGS:
        fail(f"the Java consumer read {readings} readings back, the Java producer wrote {READINGS}")
    return buckets


def check(output, want=None, writer="kafka-python"):
    want = want or expected()
    got = {}
    for line in output.splitlines():
        if line.startswith("bucket="):
            got[int(field(line, "bucket"))] = (int(field(line, "records")), field(line, "average"))
    if sorted(got) != sorted(want):
        fail(f"average_temp buckets {sorted(got)} != written {sorted(want)}")
    for bucket, (count, total) in want.items():
        got_count, got_average = got[bucket]
        if got_count != count or not close(got_average, total, count):
            fail(f"bucket {bucket}: average_temp records={got_count} average={got_average}, "
                 f"written records={count} average={total / 100 / count:.4f}")
    last = summary(output, "average_temp:")
    records, bad = int(field(last, "records")), int(field(last, "bad"))
    total = sum(t for _, t in want.values())
    if records != READINGS or bad != BAD or not close(field(last, "average"), total, READINGS):
        fail(f"average_temp read records={records} bad={bad} average={field(last, 'average')}; "
             f"{writer} wrote records={READINGS} bad={BAD} average={total / 100 / READINGS:.4f}")
    print(f"interop: average_temp read all {READINGS} readings and {BAD} bad records written by {writer}; "
          f"{len(want)} buckets, averages equal")


def main():
    if sys.argv[1:2] == ["produce"] and len(sys.argv) == 4:
        create_topic(sys.argv[2], sys.argv[3], PARTITIONS)
        produce_batches(sys.argv[2], sys.argv[3], records(), batches=30)
    elif sys.argv[1:] == ["check"]:
        check(sys.stdin.read())
    elif sys.argv[1:] == ["lines"]:
        for record in records():
            print(f"{record['key'].decode()}|{record['value'].decode()}")
    elif sys.argv[1:2] == ["check-stored"] and len(sys.argv) == 3:
        with open(sys.argv[2]) as stored:
            want = stored_expected(stored.read())
        check(sys.stdin.read(), want, writer="the Java console producer")
    else:
        fail("usage: temps.py produce BROKERS TOPIC | check < output | lines | check-stored STORED < output")


if __name__ == "__main__":
    run(main)
