"""People found by any part of their username or display name, with an index on both databases.

The directory search compares `UPPER(column) LIKE UPPER('%text%')` (Django's
`icontains`), which no B-tree can serve.

PostgreSQL: pg_trgm GIN indexes on exactly those expressions, for
auth_user.username (a table of Django's, so created here rather than declared
on a model) and users_profile.display_name. They serve `'%text%'` and
`'text%'` alike.

SQLite: an FTS5 table with the trigram tokenizer, `users_search` (its rowid is
the user id), holds each user's username and display name, kept current by
triggers on auth_user and users_profile; a three-character or longer search is
a MATCH on it. SQLite drops a table's triggers when Django rebuilds the table
to alter a column: tests/users/test_search.py migrates a fresh SQLite database
and searches it, so a later migration that does so fails there.
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

POSTGRESQL = [
    "CREATE INDEX users_username_trgm ON auth_user USING gin (UPPER(username::text) gin_trgm_ops)",
    "CREATE INDEX users_display_name_trgm ON users_profile USING gin (UPPER(display_name::text) gin_trgm_ops)",
]
POSTGRESQL_REVERSE = ["DROP INDEX users_username_trgm", "DROP INDEX users_display_name_trgm"]

SQLITE = [
    "CREATE VIRTUAL TABLE users_search USING fts5(username, display_name, tokenize='trigram')",
    """INSERT INTO users_search (rowid, username, display_name)
       SELECT u.id, u.username, COALESCE(p.display_name, '')
       FROM auth_user u LEFT JOIN users_profile p ON p.user_id = u.id""",
    """CREATE TRIGGER users_search_user_insert AFTER INSERT ON auth_user BEGIN
         INSERT INTO users_search (rowid, username, display_name) VALUES (new.id, new.username, '');
       END""",
    """CREATE TRIGGER users_search_user_rename AFTER UPDATE OF username ON auth_user BEGIN
         UPDATE users_search SET username = new.username WHERE rowid = new.id;
       END""",
    """CREATE TRIGGER users_search_user_delete AFTER DELETE ON auth_user BEGIN
         DELETE FROM users_search WHERE rowid = old.id;
       END""",
    """CREATE TRIGGER users_search_profile_insert AFTER INSERT ON users_profile BEGIN
         UPDATE users_search SET display_name = new.display_name WHERE rowid = new.user_id;
       END""",
    """CREATE TRIGGER users_search_profile_update AFTER UPDATE OF display_name ON users_profile BEGIN
         UPDATE users_search SET display_name = new.display_name WHERE rowid = new.user_id;
       END""",
    """CREATE TRIGGER users_search_profile_delete AFTER DELETE ON users_profile BEGIN
         UPDATE users_search SET display_name = '' WHERE rowid = old.user_id;
       END""",
]
SQLITE_REVERSE = [
    *(
        f"DROP TRIGGER users_search_{name}"
        for name in ("user_insert", "user_rename", "user_delete", "profile_insert", "profile_update", "profile_delete")
    ),
    "DROP TABLE users_search",
]


class KeepingTrigramExtension(TrigramExtension):
    """pg_trgm on PostgreSQL (nothing elsewhere); reversed, the extension stays: other indexes may use it."""

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        pass


def run(statements):
    def operation(apps, schema_editor):
        for statement in statements.get(schema_editor.connection.vendor, ()):
            schema_editor.execute(statement)

    return operation


class Migration(migrations.Migration):
    dependencies = [("users", "0003_profile_last_seen_at")]

    operations = [
        KeepingTrigramExtension(),
        migrations.RunPython(
            run({"postgresql": POSTGRESQL, "sqlite": SQLITE}),
            run({"postgresql": POSTGRESQL_REVERSE, "sqlite": SQLITE_REVERSE}),
        ),
    ]
