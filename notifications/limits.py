"""Every limit on notifications, declared once.

The service, the model, the admin form and the command's help all read these.
"""

from __future__ import annotations

MAX_TITLE_CHARS = 200
# Ids are this service's UUIDs or any other producer's string ("notif-111").
MAX_ID_CHARS = 100
# The longest relatedEntityId and type another producer's record may carry.
MAX_RELATED_ENTITY_ID_CHARS = 64
MAX_TYPE_CHARS = 32
MAX_CONTENT_CHARS = 4000
# Pages of the REST list.
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
