"""Credentials kept out of params, tags, logs and printed URIs: one rule for every layer.

* :data:`SECRET_KEY`: a key that names a credential (``db_password``, ``api_key``, ``token``, ...);
* :data:`URL_PASSWORD`: ``scheme://user:password@host``, a password inside a URL;
* :func:`redact`: a text with the credentials of its URLs masked.
"""

from __future__ import annotations

import re

__all__ = ["SECRET_KEY", "URL_PASSWORD", "is_secret_key", "redact"]

#: Keys that name a credential: their values are never logged, and params.yaml may not hold them.
SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|credential|auth|private[_-]?key|access[_-]?key|session",
    re.IGNORECASE,
)
#: scheme://user:password@host: a password inside a URL.
URL_PASSWORD = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:]*:[^/@\s]+@")
#: The userinfo of a URL (``user:password@`` or a bare ``token@``).
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def is_secret_key(key: object) -> bool:
    """Whether ``key`` names a credential."""
    return bool(SECRET_KEY.search(str(key)))


def _mask(m: re.Match[str]) -> str:
    user, sep, _ = m.group("userinfo").partition(":")
    # user:password keeps the user name; a bare userinfo (a token as the user) is masked whole
    return f"{m.group('scheme')}{user}:***@" if sep else f"{m.group('scheme')}***@"


def redact(text: str) -> str:
    """``text`` with the credentials of its URLs masked: ``scheme://user:***@host``, ``scheme://***@host``."""
    return _URL_USERINFO.sub(_mask, text)
