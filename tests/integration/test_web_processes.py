"""Several daphne processes on one port (`manage.py serve --processes 2`).

Sockets land on different processes; a message still goes WebSocket ->
daphne -> PostgreSQL -> Kafka -> bridge -> Redis channel layer -> WebSocket
from one process to the other. The parent restarts a child that dies, closes
every socket with 1001 on SIGTERM, and takes its children with it when it is
SIGKILLed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import psutil
import pytest

from tests.support.client import Socket, User, conversation, register
from tests.support.stack import Proc, Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def multi_stack() -> Iterator[Stack]:
    stack = Stack.create("web_processes")
    try:
        stack.start_bridge()
        yield stack
    finally:
        stack.stop()


def serving_pid(parent: psutil.Process, socket: Socket) -> int | None:
    """Return the pid of the child that holds the server end of this client socket."""
    server_port = socket.conn.remote_address[1]
    client_port = socket.conn.local_address[1]
    for child in parent.children():
        try:
            connections = child.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        if any(c.laddr.port == server_port and c.raddr and c.raddr.port == client_port for c in connections):
            return child.pid
    return None


async def open_on_new_process(user: User, parent: psutil.Process, seen: set[int], opened: list[Socket]) -> int:
    """Open sockets until one is served by a process not in `seen`; return its pid (all stay in `opened`)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        socket = await user.ws()
        opened.append(socket)
        pid = serving_pid(parent, socket)
        if pid is not None and pid not in seen:
            return pid
        await asyncio.sleep(0.1)
    raise AssertionError(f"{len(opened)} sockets, all served by {seen}")


def children_of(web: Proc, count: int, timeout: float = 60) -> list[psutil.Process]:
    """Wait until the parent has `count` children; return them."""
    parent = psutil.Process(web.popen.pid)
    deadline = time.monotonic() + timeout
    while len(children := parent.children()) != count:
        assert time.monotonic() < deadline, f"{len(children)} children, wanted {count}:\n{web.log_tail()}"
        time.sleep(0.1)
    return children


def wait_accepting(web: Proc, *children: psutil.Process, timeout: float = 180) -> None:
    """Wait until each child has adopted the listening socket (a busy machine takes a while to start one)."""
    deadline = time.monotonic() + timeout
    for child in children:
        while f"Web process {child.pid} is accepting" not in web.log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, web.log_tail()
            time.sleep(0.2)


def wait_gone(processes: list[psutil.Process], timeout: float = 10) -> list[psutil.Process]:
    """Wait until the processes are gone (or zombies waiting to be reaped); return those still running."""
    deadline = time.monotonic() + timeout
    while True:
        running = []
        for process in processes:
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    running.append(process)
            except psutil.NoSuchProcess:
                pass
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.1)


async def test_sockets_on_two_processes_reach_each_other_and_sigterm_closes_all(multi_stack: Stack):
    web, base = multi_stack.start_web(processes=2)
    parent = psutil.Process(web.popen.pid)
    children = children_of(web, 2)
    wait_accepting(web, *children)
    alice, bob = register(base, "alice"), register(base, "bob")
    direct = conversation(alice, bob)
    opened: list[Socket] = []
    try:
        alice_pid = await open_on_new_process(alice, parent, set(), opened)
        a = opened[-1]
        bob_pid = await open_on_new_process(bob, parent, {alice_pid}, opened)
        b = opened[-1]
        assert {alice_pid, bob_pid} == {c.pid for c in children}

        ack = await a.send_message(direct["id"], "from one process")
        assert (await b.wait_type("message.new", timeout=30))["message"] == ack["message"]
        reply = await b.send_message(direct["id"], "to the other")
        assert (await a.wait_type("message.new", timeout=30))["message"] == reply["message"]

        seconds = web.terminate()
        assert web.popen.returncode == 0, web.log_tail()
        assert seconds < 10, f"took {seconds:.1f}s"
        # Every socket, on either process, was closed with 1001 (going away).
        assert [await s.wait_closed(15) for s in opened] == [1001] * len(opened)
        assert wait_gone(children) == []
    finally:
        for socket in opened:
            await socket.close()


async def test_a_dead_process_is_restarted_and_all_die_with_a_killed_parent(multi_stack: Stack):
    web, _base = multi_stack.start_web(processes=2)
    victim, survivor = children_of(web, 2)
    wait_accepting(web, victim, survivor)
    victim.kill()
    # The parent notices, logs it and starts a new process in its place.
    deadline = time.monotonic() + 60
    while victim.pid in {c.pid for c in children_of(web, 2)}:
        assert time.monotonic() < deadline, web.log_tail()
        time.sleep(0.2)
    replacement = next(c for c in children_of(web, 2) if c.pid != survivor.pid)
    assert f"(pid {victim.pid}) exited with signal SIGKILL" in web.log_path.read_text()
    wait_accepting(web, replacement)

    web.kill()  # SIGKILL: the parent forwards nothing
    assert wait_gone([survivor, replacement]) == [], "children outlived their SIGKILLed parent"
