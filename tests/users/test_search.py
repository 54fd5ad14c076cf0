"""The directory search: any part of a name, any case, best matches first, through an index on both databases."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.support.stack import ROOT
from users.selectors import users_search
from users.services import profile_set_display_name


def names(search: str, **kwargs) -> list[str]:
    return [user["username"] for user in users_search(search=search, **kwargs)]


def make(username: str, display_name: str = "", *, active: bool = True):
    user = get_user_model().objects.create_user(username=username, password="x", is_active=active)
    if display_name:
        profile_set_display_name(user=user, display_name=display_name)
    return user


@pytest.mark.django_db
def test_any_part_of_a_username_or_display_name_finds_them_in_any_case():
    make("ann-xnu9", "Ann Baker")
    make("bakerloo")
    make("ben", "Ben Bakerson")
    make("cat", "Cat Cole")
    make("gone-baker", active=False)
    assert names("Baker") == ["bakerloo", "ann-xnu9", "ben"]  # the name's start, then a word's start
    assert names("xnu") == names("XNU") == ["ann-xnu9"]
    assert names("aker") == ["ann-xnu9", "bakerloo", "ben"]  # inside words only: by username
    assert names("n bak") == ["ann-xnu9", "ben"]  # across a space of the display name
    assert names("ole") == ["cat"]
    assert names("Baker", limit=2) == ["bakerloo", "ann-xnu9"]
    assert names("zzz") == []
    # The name itself comes before names that start with it.
    make("bak")
    assert names("bak")[:2] == ["bak", "bakerloo"]


@pytest.mark.django_db
def test_a_search_of_one_or_two_characters_matches_the_start_of_a_name_or_word():
    make("ann-xnu9", "Ann Baker")
    make("joanne")
    assert names("an") == ["ann-xnu9"]  # not "joanne": "an" is inside it
    assert names("ba") == ["ann-xnu9"]  # a word of the display name
    assert names("xn") == ["ann-xnu9"]  # a word of the username, after its dash
    assert names("ann") == ["ann-xnu9", "joanne"]  # from three characters, any part


@pytest.mark.django_db
def test_like_wildcards_and_quotes_are_plain_characters():
    make("ann-xnu9", "Ann 100% Baker")
    make("a_b", 'Say "hi"')
    assert names("100%") == ["ann-xnu9"]
    assert names("%") == names("_") == []  # as the start of a name or word: none has it
    assert names("a_b") == ["a_b"]
    assert names('"hi"') == ["a_b"]


@pytest.mark.django_db
def test_postgresql_serves_the_search_from_the_trigram_indexes():
    assert connection.vendor == "postgresql"
    make("ann-xnu9", "Ann Baker")
    with CaptureQueriesContext(connection) as queries:
        assert names("Baker") == ["ann-xnu9"]
    (query,) = queries.captured_queries
    with connection.cursor() as cursor:
        # A test table is small enough that the planner reads it whole; the question here is whether the
        # index can serve the query's expressions at all (a 200,000-user table used them by itself).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + query["sql"].replace("%", "%%"))
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Bitmap Index Scan on users_username_trgm" in plan, plan
    assert "Bitmap Index Scan on users_display_name_trgm" in plan, plan


SQLITE_SCRIPT = textwrap.dedent(
    """
    from django.core.management import call_command
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from users.models import Profile
    from users.selectors import users_search
    from users.services import profile_set_display_name

    def names(search):
        return [user["username"] for user in users_search(search=search)]

    # Every migration, Django's own included: one that rebuilt auth_user or users_profile would drop the triggers.
    call_command("migrate", verbosity=0)
    User = get_user_model()
    ann = User.objects.create_user(username="ann-xnu9", password="x")
    profile_set_display_name(user=ann, display_name="Ann Baker")
    User.objects.create_user(username="bakerloo", password="x")
    zed = User.objects.create_user(username="zed", password="x")
    profile_set_display_name(user=zed, display_name="Zoë Ünal")
    assert names("Baker") == ["bakerloo", "ann-xnu9"], names("Baker")
    assert names("XNU") == ["ann-xnu9"] and names("ünal") == ["zed"]
    assert names("ba") == ["bakerloo", "ann-xnu9"] and names("an") == ["ann-xnu9"]
    assert names('"x') == names("%") == []
    with CaptureQueriesContext(connection) as queries:
        names("Baker")
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + queries.captured_queries[0]["sql"].replace("%", "%%"))
        plan = str(cursor.fetchall())
    assert "SCAN users_search VIRTUAL TABLE" in plan, plan
    # The triggers follow renames, new display names, removed profiles and deleted users.
    ann.username = "ann-2"
    ann.save()
    profile_set_display_name(user=zed, display_name="Zed Quill")
    assert names("xnu") == [] and names("ann-2") == ["ann-2"]
    assert names("ünal") == [] and names("quill") == ["zed"]
    Profile.objects.filter(user=zed).delete()
    assert names("quill") == []
    User.objects.filter(username="bakerloo").delete()
    assert names("Baker") == ["ann-2"]
    print("searched")
    """
)


def test_sqlite_serves_the_search_from_its_trigram_table_kept_by_triggers(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_ENV_FILE": "/dev/null",
        "DJANGO_SECRET_KEY": "tests",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v0", "-c", SQLITE_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "searched" in done.stdout, done.stdout + done.stderr
