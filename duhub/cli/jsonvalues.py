"""Check the values of a JSON event against the kinds of its fields before protobuf parses it.

protobuf's parser answered a value of the wrong kind in its own or Python's words, naming no
field path: "Failed to parse persons field: Value out of range: -3.", "invalid literal for int()
with base 10: 'lots'", "expected string or bytes-like object, got 'int'". Here the field is
named by its path in protobuf's names, as the hub names the fields of its rejections
(`talk_held.persons`, `campaign_launched.groups[0].target_unit_ids[1]`), and the reason in plain
words. What is not checked here (unknown fields, times' forms) is left to the parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor

# Python reads no longer integer (sys.get_int_max_str_digits); json.loads raised for one,
# "Exceeds the limit (4300 digits) … use sys.set_int_max_str_digits()", naming no field.
MAX_DIGITS = 4300
# A string value quoted in a reason is cut to this many characters.
QUOTED = 40
_TIMESTAMP = "google.protobuf.Timestamp"
_DIGITS = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

_T = FieldDescriptor
_RANGES = {
    **dict.fromkeys((_T.TYPE_UINT32, _T.TYPE_FIXED32), (0, 2**32 - 1)),
    **dict.fromkeys((_T.TYPE_INT32, _T.TYPE_SINT32, _T.TYPE_SFIXED32), (-(2**31), 2**31 - 1)),
    **dict.fromkeys((_T.TYPE_UINT64, _T.TYPE_FIXED64), (0, 2**64 - 1)),
    **dict.fromkeys((_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64), (-(2**63), 2**63 - 1)),
}


@dataclass(frozen=True, slots=True)
class LongNumber:
    """A JSON number of more digits than Python reads, kept to be named by its field."""

    digits: int


def read_int(text: str) -> int | LongNumber:
    """json.loads's parse_int: a number too long to read is kept as its length."""
    if len(text.lstrip("-")) > MAX_DIGITS:
        return LongNumber(len(text.lstrip("-")))
    return int(text)


def first_wrong_value(js: dict[str, object], d: Descriptor, path: str = "") -> tuple[str, str]:
    """Return (field path, reason) of the first value in `js` not of its field's kind, or
    ("", "") when there is none."""
    for key, value in js.items():
        f = d.fields_by_camelcase_name.get(key) or d.fields_by_name.get(key)
        if f is None or value is None:
            continue  # the parser answers a field it does not know; null is an unset field
        where = f"{path}.{f.name}" if path else f.name
        if f.is_repeated:
            if not isinstance(value, list):
                return where, f"must be a JSON array, not {_described(value)}"
            for i, item in enumerate(value):
                found = _wrong(f, item, f"{where}[{i}]")
                if found[0]:
                    return found
        else:
            found = _wrong(f, value, where)
            if found[0]:
                return found
    return "", ""


def _wrong(f: FieldDescriptor, value: object, where: str) -> tuple[str, str]:
    """Return (where, reason) when `value` is not of the kind of field `f`, else ("", "")."""
    if f.message_type is not None:
        if f.message_type.full_name == _TIMESTAMP:
            if isinstance(value, str):
                return "", ""  # its form is checked by the caller (RFC 3339)
            return where, f"must be an RFC 3339 time in a string, not {_described(value)}"
        if not isinstance(value, dict):
            return where, f"must be a JSON object, not {_described(value)}"
        return first_wrong_value(value, f.message_type, where)
    if f.type in _RANGES:
        low, high = _RANGES[f.type]
        number = _whole(value)
        if number is None or not low <= number <= high:
            given = _described(value, bare=True)
            return where, f"must be a whole number from {low} to {high}, not {given}"
        return "", ""
    if f.enum_type is not None:
        names = [v.name for v in f.enum_type.values if v.number != 0]
        # A number is the parser's (and the hub's) to answer: it may name a value.
        if isinstance(value, int) and not isinstance(value, bool):
            return "", ""
        if not isinstance(value, str) or value not in f.enum_type.values_by_name:
            return where, f"must be one of {', '.join(names)}, not {_described(value)}"
        return "", ""
    if f.type == _T.TYPE_BOOL:
        if not isinstance(value, bool):
            return where, f"must be true or false, not {_described(value)}"
        return "", ""
    if f.type in (_T.TYPE_STRING, _T.TYPE_BYTES) and not isinstance(value, str):
        return where, f"must be a string, not {_described(value)}"
    return "", ""


def _whole(value: object) -> int | None:
    """Return the whole number protobuf's parser reads from a JSON value (a number, or a
    string holding one: 64-bit integers are strings in canonical JSON), None when none."""
    if isinstance(value, bool) or isinstance(value, LongNumber):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    # A JSON number's form only: Python's int() also reads "7_0" (as 70), which the parser
    # took silently.
    if not isinstance(value, str) or len(value) > MAX_DIGITS or not _NUMBER.fullmatch(value):
        return None
    if _DIGITS.fullmatch(value):
        return int(value)
    as_float = float(value)  # "1e2", as the parser reads it
    return int(as_float) if as_float.is_integer() else None


def _described(value: object, *, bare: bool = False) -> str:
    """Say what a JSON value is, quoting a short one; `bare`: a number as it is."""
    if isinstance(value, LongNumber):
        return f"a number of {value.digits} digits"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value) if bare else f"the number {value}"
    if isinstance(value, str):
        if len(value) > QUOTED:
            return f"{value[:QUOTED]!r}… ({len(value)} characters)"
        return repr(value)
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, dict):
        return "a JSON object"
    return "null"
