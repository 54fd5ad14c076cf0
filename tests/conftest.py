"""Fixtures shared by all tests.

Unit tests use pytest-django's test database. Integration tests use `stack`:
a real daphne server and a real run_kafka_bridge process on a database of
their own, against the PostgreSQL, Redis and Kafka that `make test` starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.client import User, register
from tests.support.stack import Stack, serving_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with serving_stack("it") as stack:
        yield stack


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
