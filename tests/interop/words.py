"""Interop check for word_count, both directions: kafka-python writes text
lines that word_count reads (through kafka_source), and kafka-python reads
back the (word, count) records word_count wrote (through kafka_sink).

    python words.py produce BROKERS INPUT            writes the lines
    python words.py check BROKERS OUTPUT < output    compares word_count's output and topic
    python words.py lines                            prints the lines (for Kafka's Java ConsoleProducer)
    python words.py check-read READ < output         compares word_count's output and the counts
                                                     READ by Kafka's Java ConsoleConsumer
                                                     (WORD<TAB>COUNT lines)

The lines are a pure function of the seed, so `check` recomputes them.
"""

import collections
import random
import sys

from kafka_client import create_topic, fail, field, produce_batches, read_all, run, summary

PARTITIONS = 3
LINES = 2000
VOCABULARY = ["fox", "Dog", "stream", "log", "frontier", "timely", "kafka", "record", "epoch", "offset",
              "watermark", "partition", "broker", "sink", "source", "numbat"] + [f"Term{n}" for n in range(300)]
SUFFIXES = ["", "", "", ",", ".", ";", "!", ")"]


def lines():
    """Lines of 1 to 12 words, some wrapped in punctuation word_count trims."""
    rng = random.Random(5)
    out = []
    for _ in range(LINES):
        words = []
        for _ in range(rng.randint(1, 12)):
            prefix = "(" if rng.random() < 0.05 else ""
            words.append(prefix + rng.choice(VOCABULARY) + rng.choice(SUFFIXES))
        out.append(" ".join(words))
    return out


def words_of(line):
    """word_count's tokenisation: split on whitespace, trim non-alphanumeric
    characters at both ends, lower-case, drop empty words (ASCII here)."""
    out = []
    for word in line.split():
        word = word.strip("".join(c for c in word if not c.isalnum())).lower()
        if word:
            out.append(word)
    return out


def expected_counts():
    return collections.Counter(word for line in lines() for word in words_of(line))


def check_summary(output, want, writer):
    last = summary(output, "word_count:")
    read_lines, words, written = int(field(last, "lines")), int(field(last, "words")), int(field(last, "written"))
    if read_lines != LINES or words != len(want) or written != len(want):
        fail(f"word_count read lines={read_lines}, counted words={words}, wrote {written} records; "
             f"{writer} wrote {LINES} lines of {len(want)} distinct words")


def compare(topic, pairs, want, reader):
    got = {}
    for word, value in pairs:
        if word in got:
            fail(f"word {word!r} written twice to {topic} (counts {got[word]} and {value})")
        got[word] = int(value)
    if got != dict(want):
        wrong = sorted(w for w in set(got) | set(want) if got.get(w) != want.get(w))[:5]
        fail(f"{topic} as read by {reader} differs from the counts of what was written: "
             + ", ".join(f"{w}: topic {got.get(w)} written {want.get(w)}" for w in wrong))


def check(brokers, topic, output):
    want = expected_counts()
    check_summary(output, want, "kafka-python")
    records = read_all(brokers, topic, expected=len(want))
    compare(topic, [(key.decode(), value.decode()) for key, value, _, _ in records], want, "kafka-python")
    print(f"interop: word_count read all {LINES} lines written by kafka-python; kafka-python read back "
          f"{len(records)} counts from {topic}, all equal ({sum(want.values())} words)")


def main():
    if sys.argv[1:2] == ["produce"] and len(sys.argv) == 4:
        create_topic(sys.argv[2], sys.argv[3], PARTITIONS)
        records = [{"key": str(i).encode(), "value": line.encode()} for i, line in enumerate(lines())]
        produce_batches(sys.argv[2], sys.argv[3], records, batches=20)
    elif sys.argv[1:2] == ["check"] and len(sys.argv) == 4:
        check(sys.argv[2], sys.argv[3], sys.stdin.read())
    elif sys.argv[1:] == ["lines"]:
        print("\n".join(lines()))
    elif sys.argv[1:2] == ["check-read"] and len(sys.argv) == 3:
        want = expected_counts()
        check_summary(sys.stdin.read(), want, "the Java console producer")
        with open(sys.argv[2]) as read:
            pairs = [line.split("\t", 1) for line in read.read().splitlines() if "\t" in line]
        compare("the output topic", pairs, want, "the Java console consumer")
        print(f"interop: word_count read all {LINES} lines written by the Java console producer; the Java "
              f"console consumer read back {len(pairs)} counts, all equal ({sum(want.values())} words)")
    else:
        fail("usage: words.py produce BROKERS INPUT | check BROKERS OUTPUT < output | lines | check-read READ < output")


if __name__ == "__main__":
    run(main)
