"""Every limit on what clients send to the users directory, declared once.

The checks, the REST serializers, the OpenAPI schema and the help texts read these.
"""

from __future__ import annotations

MAX_DISPLAY_NAME_CHARS = 100
# A search text longer than any username (150) or display name cannot match.
MAX_SEARCH_CHARS = 150
SEARCH_DEFAULT_LIMIT = 20
# A shorter search matches the start of a name or of a word in it, not any part: one or two letters are in most
# names, and a trigram index has no trigram of such a text to look up (GitLab draws the same line).
MIN_SUBSTRING_SEARCH_CHARS = 3
SEARCH_MAX_LIMIT = 100
