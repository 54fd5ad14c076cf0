"""A web process tuned to hold many idle sockets and to take thousands of new ones at once.

Measured with benchmarks/storm.py (10,000 sockets reconnecting): the cyclic
garbage collector took about 40% of the process's CPU, walking the few
hundred long-lived objects of every open socket again and again, and
autobahn pretty-printed every connection's options for a debug line that is
never logged (about a tenth of each handshake).
"""

from __future__ import annotations

import gc
import logging
import resource
from pprint import pformat

import autobahn.websocket.protocol
import txaio

logger = logging.getLogger(__name__)

# Collect the young generation every 50,000 net allocations instead of 700, and
# look at the old one a tenth as often: most of a socket's objects live as long
# as the socket, and what dies young is mostly freed by reference counting.
GC_THRESHOLDS = (50_000, 20, 100)


def raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard one: every socket is a file (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # an unlimited hard limit some systems refuse as a soft one
        logger.warning("Could not raise the open files limit from %d; each socket needs one", soft)
    else:
        logger.info("Raised the open files limit from %d to %d", soft, hard)


def _pformat_when_debugging(obj: object) -> str:
    # txaio's stubs leave out this function of its API.
    level = txaio.get_global_log_level()  # type: ignore[attr-defined]
    return pformat(obj) if level in ("debug", "trace") else ""


def tune_loaded_server() -> None:
    """Tune the collector and autobahn, once the application is loaded and before sockets arrive."""
    # Autobahn calls pformat for its debug line whether or not debug is logged.
    # A narrower signature than pformat's, enough for autobahn's one call.
    autobahn.websocket.protocol.pformat = _pformat_when_debugging  # type: ignore[assignment]
    # What is loaded now (Django, the app, the libraries) lives as long as the
    # process: frozen, the collector never walks it again.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
