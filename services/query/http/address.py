"""A request's address (its path's parameters and query string) read as UTF-8.

The standard library reads the request line as Latin-1 and `urllib.parse` replaces bytes that
are not UTF-8 by U+FFFD: `/api/units/%ff` asked for a unit '\ufffd' (404, as if one might
exist), and a unit id sent unencoded in UTF-8, as curl sends what it is given, arrived as
mojibake. Here a value that is not UTF-8 is refused naming its parameter.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from services.query.http.api import ApiError, Params


def _bytes(text: str) -> bytes:
    # Latin-1 back to the bytes the client sent (every character of the line is below 256).
    return unquote_to_bytes(text.encode("latin-1", "replace"))


def decoded(name: str, text: str) -> str:
    """Return the percent-decoded UTF-8 of a value of `name`; ApiError (400) names it."""
    raw = _bytes(text)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(
            400, f"{name}: not UTF-8 once percent-decoded (byte 0x{raw[e.start]:02x} at {e.start})"
        ) from None


def query_params(query: str) -> Params:
    """Return name -> values of a query string ('+' is a space), blank values kept."""
    out: dict[str, list[str]] = {}
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.replace("+", " ").partition("=")
        # A name that is not UTF-8 is no parameter the route knows: refused as unknown.
        name = _bytes(key).decode("utf-8", "replace")
        out.setdefault(name, []).append(decoded(name, value))
    return out
