"""An open WebSocket lasts no longer than the credential it was opened with.

Each socket joins the channel-layer group of its credential: its token, or
the page's session. Logging out tells that group, and its sockets get an
`error` frame with the code `logged_out` and close with 1008 (every tab of a
browser signed in with that session, every client sharing that token); a
socket opened with a token also does so when the token expires, with the
code `token_expired`. The client's reconnect
is then refused (HTTP 403) until it signs in again. Group names hold a hash
of the credential, never the credential itself.
"""

from __future__ import annotations

import hashlib

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from .tokens import TokenExpired

CREDENTIAL_ENDED_EVENT = "credential.ended"
LOGGED_OUT = "logged_out"
TOKEN_EXPIRED = "token_expired"
# What the `error` frame sent just before the close says, by its code.
CREDENTIAL_ENDED_DETAIL = {
    LOGGED_OUT: "Signed out: this token or session was ended.",
    TOKEN_EXPIRED: str(TokenExpired.default_detail),  # what REST says of an expired token
}


def credential_group(secret: str) -> str:
    """Return the channel-layer group of the sockets opened with this token or session key."""
    return "credential." + hashlib.sha256(secret.encode()).hexdigest()[:48]


def credential_ended(secret: str, reason: str = LOGGED_OUT) -> None:
    """Close every socket opened with this token or session key (from synchronous code: views)."""
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(credential_group(secret), {"type": CREDENTIAL_ENDED_EVENT, "reason": reason})
