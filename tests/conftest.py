"""Fixtures shared by all tests.

Unit tests use pytest-django's test database. Integration tests use `stack`:
a real daphne server and a real run_kafka_bridge process on a database of
their own, against the PostgreSQL, Redis and Kafka that `make test` starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.client import User, register
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    stack = Stack.create("it")
    try:
        stack.start_bridge()
        _web, stack.base = stack.start_web()  # type: ignore[attr-defined]
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def base(stack: Stack) -> str:
    return stack.base  # type: ignore[attr-defined]


@pytest.fixture
def make_user(base: str):
    def make(prefix: str = "user") -> User:
        return register(base, prefix)

    return make


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Unit tests create many users; the production hasher is slow by design.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
