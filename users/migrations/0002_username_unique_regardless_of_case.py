"""Usernames unique regardless of case: a unique index on LOWER(username) of auth_user.

auth.User belongs to Django, so the index is created here rather than
declared on the model. Names that already differ only by case stop the
migration with a list of them, to be renamed first.
"""

from django.db import migrations
from django.db.models import Count
from django.db.models.functions import Lower

INDEX = "auth_user_username_lower_uniq"


def refuse_case_duplicates(apps, schema_editor):
    User = apps.get_model("auth", "User")
    clashes = (
        User.objects.annotate(name=Lower("username")).values("name").annotate(n=Count("id")).filter(n__gt=1)
    )
    names = [row["name"] for row in clashes[:20]]
    if names:
        raise RuntimeError(
            "Usernames that differ only by case exist; rename them before migrating: " + ", ".join(names)
        )


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length"), ("users", "0001_initial")]

    operations = [
        migrations.RunPython(refuse_case_duplicates, migrations.RunPython.noop),
        migrations.RunSQL(
            f"CREATE UNIQUE INDEX {INDEX} ON auth_user (LOWER(username))",
            f"DROP INDEX {INDEX}",
        ),
    ]
