"""The database work of a measurement point, counted by PostgreSQL's pg_stat_statements.

scripts/postgres.sh loads the module into the private cluster; `enable`
creates the extension in the benchmarked database. The suite resets the
counts just before a point's first send (after the clients' warm-up) and
reads them once every client has drained and run its final `sync`, so the
counts cover the point's sends, deliveries and confirmations, by the web
processes, the outbox relay and the bridge alike. Statements are counted per
normalised query text (parameters as $1, $2, ...); our own reset and read
are left out.

Both figures divide the same total: statements per message sent, and per
confirmation frame (`message.received`) the load clients sent. The top
statements by calls, each with its own ratios, show which of the two a
statement belongs to.
"""

from __future__ import annotations

from typing import Any

import psycopg

# Statements that only frame a transaction.
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
TOP_STATEMENTS = 15
QUERY_CHARS = 300


def enable(database_url: str) -> None:
    """Create the extension in the database (the cluster must preload the module)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


def reset(database_url: str) -> None:
    """Forget every count so far."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def read(database_url: str, *, sent: int, confirmation_frames: int) -> dict[str, Any]:
    """Return the statements run in this database since the reset, per message sent and per confirmation frame."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT calls, rows, total_exec_time, query FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND query NOT ILIKE '%pg_stat_statements%' ORDER BY calls DESC"
        ).fetchall()
    total = sum(calls for calls, *_ in rows)
    control = sum(calls for calls, _rows, _ms, query in rows if query.lstrip().upper().startswith(TRANSACTION_CONTROL))

    def per(calls: int, count: int) -> float | None:
        return round(calls / count, 3) if count else None

    return {
        "sent": sent,
        "confirmation_frames": confirmation_frames,
        "statements": total,
        "transaction_control": control,
        "per_message": per(total, sent),
        "per_confirmation": per(total, confirmation_frames),
        "exec_ms": round(sum(ms for _calls, _rows, ms, _query in rows), 1),
        "top": [
            {
                "calls": calls,
                "per_message": per(calls, sent),
                "per_confirmation": per(calls, confirmation_frames),
                "rows": row_count,
                "exec_ms": round(ms, 1),
                "query": " ".join(query.split())[:QUERY_CHARS],
            }
            for calls, row_count, ms, query in rows[:TOP_STATEMENTS]
        ],
    }
