"""One redaction for every message that may hold a URL: logs, errors, metadata, reports.

A URL's userinfo is removed whatever its scheme: a mistyped one (``htps://``, ``clickhose://``,
``http:/``) is exactly the URL that ends up in an error message, so matching only ``http(s)``
or only what ``urllib`` parses would let its password through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A scheme (any, even a mistyped one, with zero to three slashes) or a bare ``//``, then the
# userinfo up to the last ``@`` of the word: a password may itself hold ``@``, ``/`` or ``:``, and
# removing too much of a URL is safe where removing too little is not.
_USERINFO = re.compile(
    r"(?P<head>(?:[A-Za-z][A-Za-z0-9+.\-]*:/{0,3}|//))"
    r"(?P<user>[^\s/?#@:'\"<>]*)(?P<password>:[^\s'\"<>]*)?@"
)
MASK = "***"


def _mask(match: re.Match[str]) -> str:
    head, user = match["head"], match["user"]
    if match["password"] is not None:
        return f"{head}{user}:{MASK}@"
    return f"{head}{MASK}@" if user else match[0]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL's password (or, without one, its user, which is then the
    credential) and every given secret replaced by ``***``. Idempotent."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _USERINFO.sub(_mask, text)
