"""Every limit on what clients send to the messaging domain, declared once.

The checks, the REST serializers, the OpenAPI schema and the help texts all
read these. The longest message is a setting (CHAT_MAX_CONTENT_CHARS), as is
the largest `sync` batch (CHAT_SYNC_BATCH_MAX).
"""

from __future__ import annotations

# A conversation has at most this many participants, its creator included.
MAX_PARTICIPANTS = 500
MAX_TITLE_CHARS = 200
MAX_CLIENT_MESSAGE_ID_CHARS = 100
# How many message ids one `message.received` may confirm.
MAX_RECEIVED_IDS = 500
# The largest seq a watermark confirmation may name: the largest integer every JSON client holds exactly.
# Above the conversation's last seq (and up to this) a watermark is clamped to the last seq.
MAX_UP_TO_SEQ = 2**53 - 1
HISTORY_DEFAULT_LIMIT = 50
HISTORY_MAX_LIMIT = 200
# A user id as text: at most the digits of a bigint.
MAX_USER_ID_CHARS = 20
# The conversation list, a page at a time (`?cursor=`).
CONVERSATION_PAGE_DEFAULT_LIMIT = 50
CONVERSATION_PAGE_MAX_LIMIT = 100
