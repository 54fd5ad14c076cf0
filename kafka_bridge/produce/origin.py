"""Which records this service produced itself, and which came from other services.

Everything this service produces (the outbox relay, ephemeral typing records)
carries the header `producer: chat-backend`. Such a record was produced
after this service's own commit (or its own check, for typing), so the
bridge delivers it as it is, without reading the database: live delivery
does not depend on PostgreSQL. A record without it comes from another
service of the delivery system, in the seed's shapes (PROTOCOL.md §5): the
handlers resolve what it leaves out and check what it names against the
database, and one that names what this service does not know is
`Unprocessable`.

A record produced again from the database (`manage.py republish`, for
consumers downstream that lost theirs) carries `republished: 1` as well: it
announces nothing new, so this service's own loops leave it alone.
"""

from __future__ import annotations

PRODUCER_HEADER = "producer"
PRODUCER = "chat-backend"
# The headers every record this service produces carries.
OWN_HEADERS: list[tuple[str, str | bytes | None]] = [(PRODUCER_HEADER, PRODUCER.encode())]
REPUBLISHED_HEADER = "republished"
# The headers of a record produced again: the same payload as the first time, marked.
REPUBLISHED_HEADERS: list[tuple[str, str | bytes | None]] = [*OWN_HEADERS, (REPUBLISHED_HEADER, b"1")]


def produced_here(headers: dict[str, str]) -> bool:
    """Return whether a record with these headers was produced by this service."""
    return headers.get(PRODUCER_HEADER) == PRODUCER


def republished(headers: dict[str, str]) -> bool:
    """Return whether a record is one this service produced again (its first copy went before)."""
    return produced_here(headers) and headers.get(REPUBLISHED_HEADER) == "1"
