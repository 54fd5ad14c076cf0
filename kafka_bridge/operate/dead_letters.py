"""Dead letters: records a consumer loop could not process, parked in `<topic>.DLT`.

Operators list them (with the error and where each came from) and replay
them to their original topic once the cause is fixed. Replaying commits the
dead-letter offsets in a consumer group of its own, so a record is replayed
once, and listing shows what is still waiting by default.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from ..consume.records import DEAD_LETTER_HEADER_PREFIX, H_ERROR, H_OFFSET, H_PARTITION, H_TOPIC, headers_of, position
from ..produce.clients import client_id, consumer_config, producer_config
from ..topics import Topic

REPLAY_GROUP = "dead-letter-replay"
# Listing reads in a throwaway group of this prefix, so that it never moves any offset.
READER_GROUP_PREFIX = "dead-letter-reader-"
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def header(self, name: str) -> str:
        """Return a header as text ('' when absent)."""
        for key, value in self.headers:
            if key == name:
                return (value or b"").decode(errors="replace")
        return ""

    @property
    def error(self) -> str:
        return self.header(H_ERROR)

    @property
    def origin(self) -> str:
        return f"{self.header(H_TOPIC)}[{self.header(H_PARTITION)}]@{self.header(H_OFFSET)}"


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


@dataclass(frozen=True)
class OffsetRange:
    """Dead-letter offsets `first` to `last` (inclusive) of one partition, as an operator names them."""

    partition: int
    first: int
    last: int

    def holds(self, letter: DeadLetter) -> bool:
        """Return whether the letter lies in this range."""
        return letter.partition == self.partition and self.first <= letter.offset <= self.last

    def __str__(self) -> str:
        if self.first == self.last:
            return f"{self.partition}:{self.first}"
        return f"{self.partition}:{self.first}-{self.last}"


class NothingToReplay(Exception):
    """The offsets an operator named hold no dead letter waiting for replay."""


def read_dead_letters(topic: Topic, *, include_replayed: bool = False) -> Iterator[DeadLetter]:
    """Yield the dead letters of a topic, by default only those not replayed yet."""
    reader = Consumer(
        {
            **consumer_config(READER_GROUP_PREFIX + uuid.uuid4().hex),
            "enable.partition.eof": True,
            "client.id": client_id("dead-letter-reader"),
        }
    )
    committed_reader = Consumer({**consumer_config(REPLAY_GROUP), "client.id": client_id("dead-letter-replay")})
    try:
        metadata = reader.list_topics(topic.dead_letter, timeout=TIMEOUT_SECONDS)
        partitions = sorted(metadata.topics[topic.dead_letter].partitions)
        starts = [TopicPartition(topic.dead_letter, p, OFFSET_BEGINNING) for p in partitions]
        if not include_replayed:
            committed = committed_reader.committed(
                [TopicPartition(topic.dead_letter, p) for p in partitions], timeout=TIMEOUT_SECONDS
            )
            starts = [
                TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                for tp in committed
            ]
        ends = {
            p: reader.get_watermark_offsets(TopicPartition(topic.dead_letter, p), timeout=TIMEOUT_SECONDS)[1]
            for p in partitions
        }
        pending = {tp.partition for tp in starts if ends[tp.partition] > max(tp.offset, 0)}
        if not pending:
            return
        reader.assign(starts)
        while pending:
            msg = reader.poll(TIMEOUT_SECONDS)
            if msg is None:
                break
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    if (partition := msg.partition()) is not None:
                        pending.discard(partition)
                    continue
                raise RuntimeError(str(error))
            _, partition, offset = position(msg)
            yield DeadLetter(partition, offset, _bytes(msg.key()), _bytes(msg.value()), headers_of(msg))
            if offset + 1 >= ends[partition]:
                pending.discard(partition)
    finally:
        reader.close()
        committed_reader.close()


def replay_dead_letters(
    topic: Topic,
    *,
    offsets: set[tuple[int, int]] | None = None,
    ranges: list[OffsetRange] | None = None,
) -> int:
    """Send waiting dead letters back to their topic: all, or those named; return how many.

    `offsets` names (partition, offset) pairs and `ranges` offset ranges; when
    either is given and one of its entries holds no waiting dead letter (never
    there, or replayed already), nothing is replayed and NothingToReplay names it.
    """
    waiting = list(read_dead_letters(topic))
    if offsets is None and ranges is None:
        chosen = waiting
    else:
        wanted = [OffsetRange(p, o, o) for p, o in sorted(offsets or ())] + list(ranges or ())
        empty = [r for r in wanted if not any(r.holds(w) for w in waiting)]
        if empty:
            raise NothingToReplay(
                f"no dead letter waiting in {topic.dead_letter} at {', '.join(map(str, empty))}"
                " (replayed already, or no record there); nothing replayed"
            )
        chosen = [w for w in waiting if any(r.holds(w) for r in wanted)]
    if not chosen:
        return 0
    producer = Producer({**producer_config(), "client.id": client_id("dead-letter-replay")})
    failures: list[KafkaError] = []
    for letter in chosen:
        producer.produce(
            topic.name,
            key=letter.key,
            value=letter.value,
            headers=[(k, v) for k, v in letter.headers if not k.startswith(DEAD_LETTER_HEADER_PREFIX)],
            on_delivery=lambda err, _msg: failures.append(err) if err else None,
        )
    producer.flush(TIMEOUT_SECONDS * 3)
    if failures:
        raise RuntimeError(f"{len(failures)} record(s) could not be replayed: {failures[0]}")
    _mark_replayed(topic, waiting, {(c.partition, c.offset) for c in chosen})
    return len(chosen)


def replay_dead_letters_before(topic: Topic, ends: dict[int, int]) -> int:
    """Replay the waiting dead letters below the given end offset of each partition; return how many."""
    chosen = {(w.partition, w.offset) for w in read_dead_letters(topic) if w.offset < ends.get(w.partition, 0)}
    return replay_dead_letters(topic, offsets=chosen) if chosen else 0


def _mark_replayed(topic: Topic, waiting: list[DeadLetter], replayed: set[tuple[int, int]]) -> None:
    # The replay group's offset moves over the replayed records at the head of
    # each partition; one left waiting before them keeps the rest listed.
    commit: dict[int, int] = {}
    blocked: set[int] = set()
    for letter in sorted(waiting, key=lambda w: (w.partition, w.offset)):
        if letter.partition in blocked:
            continue
        if (letter.partition, letter.offset) in replayed:
            commit[letter.partition] = letter.offset + 1
        else:
            blocked.add(letter.partition)
    if not commit:
        return
    committer = Consumer({**consumer_config(REPLAY_GROUP), "client.id": client_id("dead-letter-replay")})
    try:
        committer.commit(
            offsets=[TopicPartition(topic.dead_letter, p, o) for p, o in commit.items()], asynchronous=False
        )
    finally:
        committer.close()
