"""Calling the (synchronous) ORM from async code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async


def db(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a database function for async callers, run on a pool thread with its own connection.

    Channels' default runs every such call of a process on one shared thread,
    so one slow transaction holds up every socket's frames; a pool lets
    independent transactions (and their commits) overlap.
    """
    return database_sync_to_async(func, thread_sensitive=False)
