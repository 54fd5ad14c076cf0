"""Create benchmark users, tokens and conversations directly in a stack's database.

Registering over REST hashes a password per user (0.1-0.4 s each); the
benchmarks need up to 10,000 users, so they are written in bulk here: users
with an unusable password and a token each. Conversations go through the
project's own service, as `POST /api/conversations/` does.

Run with the stack's environment (its DATABASE_URL); reads a JSON spec on
stdin and writes the created ids as JSON on stdout:

    {"prefix": "b", "users": 40, "direct": [[0, 1], ...], "groups": [[0, 1, 2, ...]]}
    -> {"users": [{"id": "7", "token": "..."}, ...], "direct": ["<uuid>", ...], "groups": ["<uuid>", ...]}

Users in `direct` and `groups` are indexes into the created users.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BATCH = 2000


def seed(spec: dict[str, Any]) -> dict[str, Any]:
    """Create what `spec` asks for; return the users' ids and tokens and the conversations' ids."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from messaging import services

    user_model = get_user_model()
    prefix = f"{spec.get('prefix', 'bench')}-{uuid.uuid4().hex[:6]}"
    users = user_model.objects.bulk_create(
        [user_model(username=f"{prefix}-{i}", password="!") for i in range(int(spec.get("users", 0)))],
        batch_size=BATCH,
    )
    tokens = Token.objects.bulk_create([Token(key=Token.generate_key(), user=user) for user in users], batch_size=BATCH)
    direct = [
        str(services.conversation_create(creator=users[a], participant_ids=[users[b].pk])[0].id)
        for a, b in spec.get("direct", [])
    ]
    groups = [
        str(
            services.conversation_create(
                creator=users[members[0]], participant_ids=[users[m].pk for m in members[1:]], title=f"{prefix} group"
            )[0].id
        )
        for members in spec.get("groups", [])
    ]
    return {
        "users": [{"id": str(user.pk), "token": token.key} for user, token in zip(users, tokens, strict=True)],
        "direct": direct,
        "groups": groups,
    }


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_project.settings")
    import django

    django.setup()
    json.dump(seed(json.load(sys.stdin)), sys.stdout)
