"""Every limit on notifications, declared once.

The service, the model, the admin form and the command's help all read these.
"""

from __future__ import annotations

MAX_TITLE_CHARS = 200
MAX_CONTENT_CHARS = 4000
# Pages of the REST list.
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
