"""Read protobuf bytes tolerantly: name the field where a message goes wrong.

`pb.Event.FromString` says only "Error parsing message" for truncated bytes, a garbled tag or
a string that is not UTF-8. `find_fault` walks the wire format against the message's
descriptor and returns the first offending field path (`supervision_visit.unit_id`,
`occurred_at`, `campaign_launched.groups[1].target_unit_ids[0]`, or the message's own name for
a fault between fields) with the reason and the byte offset. It follows the rules of the upb
parser protobuf uses: tags of at most 5 bytes, lengths of at most 5 bytes, varints of at most
10, groups nested at most 100 deep, proto3 strings in UTF-8; a known field sent with another
wire type is kept as unknown (the parser does so too; with `unknown=True` it is a fault).

Pure: no I/O, no state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

M = TypeVar("M", bound=Message)
MAX_DEPTH = 100
# Fields a fault is looked for among, at most: an event holds at most ~140,000 valid ones
# (100,000 targets in 10,000 groups, convert.MAX_TARGETS/MAX_GROUPS); 32 MiB of two-byte
# strings held 16 million, 40 s of walking, which anyone could send (security probe).
MAX_FIELDS = 200_000

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
WIRE_NAMES = {
    VARINT: "varint",
    I64: "64-bit",
    LEN: "length-delimited",
    SGROUP: "start-group",
    EGROUP: "end-group",
    I32: "32-bit",
}
_T = FieldDescriptor
_WIRE_OF_TYPE = {
    _T.TYPE_INT32: VARINT,
    _T.TYPE_INT64: VARINT,
    _T.TYPE_UINT32: VARINT,
    _T.TYPE_UINT64: VARINT,
    _T.TYPE_SINT32: VARINT,
    _T.TYPE_SINT64: VARINT,
    _T.TYPE_BOOL: VARINT,
    _T.TYPE_ENUM: VARINT,
    _T.TYPE_DOUBLE: I64,
    _T.TYPE_FIXED64: I64,
    _T.TYPE_SFIXED64: I64,
    _T.TYPE_FLOAT: I32,
    _T.TYPE_FIXED32: I32,
    _T.TYPE_SFIXED32: I32,
    _T.TYPE_STRING: LEN,
    _T.TYPE_BYTES: LEN,
    _T.TYPE_MESSAGE: LEN,
    _T.TYPE_GROUP: SGROUP,
}


@dataclass(frozen=True, slots=True)
class Fault:
    """Where and why bytes are not a valid message: `path` names the field."""

    path: str
    reason: str
    offset: int

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class _Stop(Exception):
    def __init__(self, fault: Fault) -> None:
        self.fault = fault


def find_fault(
    descriptor: Descriptor,
    data: bytes,
    *,
    root: str = "",
    unknown: bool = False,
    max_fields: int = MAX_FIELDS,
) -> Fault | None:
    """Return the first fault of `data` read as `descriptor`, or None when it is valid.

    `root` names the message itself (for a fault between fields: `event: truncated at byte
    57`); field paths are relative to it, as in `supervision_visit.unit_id`. With `unknown`,
    a field the descriptor does not hold (or holds with another wire type) is a fault too.
    Past `max_fields` fields (nested ones counted) the walk stops, a fault of its own: the
    walk is Python, ~2.5 µs a field, and a request runs it before its caller is known.
    """
    walker = _Walker(bytes(data), unknown, root or descriptor.name, max_fields)
    try:
        walker.message(descriptor, 0, len(data), "", 0)
    except _Stop as stop:
        return stop.fault
    return None


def split_repeated(
    descriptor: Descriptor, data: bytes, number: int, *, root: str = ""
) -> tuple[list[bytes], Fault | None]:
    """Return the raw values of the length-delimited field `number` of a message.

    Every other field must be valid and known to `descriptor` (a fault otherwise): this is for
    envelopes such as PublishRequest, whose one field is `repeated Event events = 1`. The
    values are not looked into. On a fault, returns what was read before it and the fault.
    """
    out: list[bytes] = []
    name = root or descriptor.name
    walker = _Walker(bytes(data), True, name)
    pos, end = 0, len(data)
    try:
        while pos < end:
            field_start = pos
            pos, number_, wire = walker.tag(pos, end, name)
            if number_ == number and wire == LEN:
                pos, length = walker.length(pos, end, name)
                out.append(walker.data[pos : pos + length])
                pos += length
                continue
            if wire == EGROUP:
                raise _Stop(
                    Fault(name, f"end-group without a start at byte {field_start}", field_start)
                )
            walker.skip_unknown(descriptor, number_, wire, pos, end, "", field_start, 0)
    except _Stop as stop:
        return out, stop.fault
    return out, None


def first_string(data: bytes, number: int) -> str:
    """Return the first well-formed UTF-8 string of top-level field `number` ('' if none)."""
    walker = _Walker(bytes(data), False, "")
    pos, end = 0, len(data)
    try:
        while pos < end:
            pos, number_, wire = walker.tag(pos, end, "")
            if wire == LEN:
                pos, length = walker.length(pos, end, "")
                if number_ == number:
                    return walker.data[pos : pos + length].decode("utf-8")
                pos += length
            elif wire in (VARINT, I64, I32):
                pos = walker.skip_scalar(wire, pos, end, "")
            else:
                return ""
    except (_Stop, UnicodeDecodeError):
        pass
    return ""


def decode(cls: type[M], data: bytes, *, root: str, on_fault: Callable[[Fault], Exception]) -> M:
    """Return `cls.FromString(data)`; when it fails, raise on_fault(the fault found)."""
    try:
        return cls.FromString(data)
    except DecodeError as e:
        fault = find_fault(cls.DESCRIPTOR, data, root=root) or Fault(
            root, f"not a valid {cls.DESCRIPTOR.full_name} ({e})", 0
        )
        raise on_fault(fault) from None


def unknown_field(message: Message, *, root: str = "") -> Fault | None:
    """Return the first field of a parsed message that its type does not know, if any.

    The parser keeps such fields (a newer sender's, or garbled bytes that still parse);
    this names the first one, with the message that holds it.
    """
    copy = type(message)()
    copy.CopyFrom(message)
    size = copy.ByteSize()
    copy.DiscardUnknownFields()
    if copy.ByteSize() == size:
        return None
    data = message.SerializeToString()
    return find_fault(message.DESCRIPTOR, data, root=root, unknown=True) or Fault(
        root or message.DESCRIPTOR.name, "holds a field this hub does not know", 0
    )


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Walker:
    def __init__(self, data: bytes, unknown: bool, root: str, max_fields: int = 0) -> None:
        self.data = data
        self.unknown = unknown
        self.root = root
        self.max_fields = max_fields  # 0: no limit (split_repeated, first_string)
        self.fields = 0

    def _name(self, path: str) -> str:
        return path or self.root

    def _truncated(self, path: str, at: int) -> _Stop:
        return _Stop(Fault(self._name(path), f"truncated at byte {at}", at))

    def varint(self, pos: int, end: int, path: str, limit: int = 10) -> tuple[int, int]:
        """Return (position after, value) of the varint at pos."""
        value = shift = 0
        start = pos
        while True:
            if pos >= end:
                raise self._truncated(path, pos)
            if pos - start >= limit:
                raise _Stop(
                    Fault(
                        self._name(path), f"varint longer than {limit} bytes at byte {start}", start
                    )
                )
            b = self.data[pos]
            value |= (b & 0x7F) << shift
            shift += 7
            pos += 1
            if not b & 0x80:
                return pos, value & 0xFFFF_FFFF_FFFF_FFFF

    def tag(self, pos: int, end: int, path: str) -> tuple[int, int, int]:
        """Return (position after, field number, wire type) of the tag at pos."""
        start = pos
        self.fields += 1
        if self.fields > self.max_fields > 0:
            raise _Stop(
                Fault(
                    self.root,
                    f"not valid, and not looked into past its first {self.max_fields:,} "
                    f"fields (byte {start})",
                    start,
                )
            )
        value = shift = 0
        while True:
            if pos >= end:
                raise self._truncated(path, pos)
            if pos - start >= 5:
                raise _Stop(Fault(self._name(path), f"malformed tag at byte {start}", start))
            b = self.data[pos]
            value |= (b & 0x7F) << shift
            shift += 7
            pos += 1
            if not b & 0x80:
                break
        if value > 0xFFFF_FFFF:
            raise _Stop(Fault(self._name(path), f"malformed tag at byte {start}", start))
        number, wire = value >> 3, value & 7
        if number == 0:
            raise _Stop(Fault(self._name(path), f"field number 0 at byte {start}", start))
        if wire > 5:
            raise _Stop(Fault(self._name(path), f"invalid wire type {wire} at byte {start}", start))
        return pos, number, wire

    def length(self, pos: int, end: int, path: str) -> tuple[int, int]:
        """Return (position after, length) of a length prefix, the bytes it counts present."""
        start = pos
        pos, length = self.varint(pos, end, path, limit=5)
        if length >= 0x7FFF_FFFF:
            raise _Stop(Fault(self._name(path), f"length too large at byte {start}", start))
        if pos + length > end:
            raise _Stop(
                Fault(
                    self._name(path),
                    f"truncated: {length} bytes announced at byte {start}, only {end - pos} left",
                    start,
                )
            )
        return pos, length

    def skip_scalar(self, wire: int, pos: int, end: int, path: str) -> int:
        if wire == VARINT:
            return self.varint(pos, end, path)[0]
        size = 8 if wire == I64 else 4
        if pos + size > end:
            raise self._truncated(path, end)
        return pos + size

    def message(self, d: Descriptor, pos: int, end: int, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise _Stop(Fault(self._name(path), f"nested more than {MAX_DEPTH} deep", pos))
        counts: dict[int, int] = {}
        while pos < end:
            field_start = pos
            pos, number, wire = self.tag(pos, end, path)
            if wire == EGROUP:
                raise _Stop(
                    Fault(
                        self._name(path),
                        f"end-group without a start at byte {field_start}",
                        field_start,
                    )
                )
            f = d.fields_by_number.get(number)
            if f is None or _WIRE_OF_TYPE[f.type] != wire and not _packed(f, wire):
                pos = self.skip_unknown(d, number, wire, pos, end, path, field_start, depth)
                continue
            index = counts.get(number, 0)
            counts[number] = index + 1
            fpath = _join(path, f.name)
            if f.is_repeated and not _packed(f, wire):
                fpath = f"{fpath}[{index}]"
            if wire != LEN:
                pos = self.skip_scalar(wire, pos, end, fpath)
                continue
            value_start, length = self.length(pos, end, fpath)
            pos = value_start + length
            if f.type == _T.TYPE_STRING:
                try:
                    self.data[value_start:pos].decode("utf-8")
                except UnicodeDecodeError as e:
                    raise _Stop(
                        Fault(
                            fpath,
                            f"invalid UTF-8 at byte {value_start + e.start}",
                            value_start + e.start,
                        )
                    ) from None
            elif f.type == _T.TYPE_MESSAGE:
                self.message(f.message_type, value_start, pos, fpath, depth + 1)
            elif f.type != _T.TYPE_BYTES:  # a packed run of scalars
                inner = _WIRE_OF_TYPE[f.type]
                p = value_start
                while p < pos:
                    p = self.skip_scalar(inner, p, pos, fpath)

    def skip_unknown(
        self,
        d: Descriptor,
        number: int,
        wire: int,
        pos: int,
        end: int,
        path: str,
        field_start: int,
        depth: int,
    ) -> int:
        """Skip a field the descriptor does not hold (a fault when unknown fields are)."""
        if self.unknown:
            f = d.fields_by_number.get(number)
            if f is not None:
                want = WIRE_NAMES[_WIRE_OF_TYPE[f.type]]
                raise _Stop(
                    Fault(
                        _join(path, f.name),
                        f"wrong wire type {WIRE_NAMES[wire]} (expected {want}) at byte "
                        f"{field_start}",
                        field_start,
                    )
                )
            raise _Stop(
                Fault(
                    self._name(path),
                    f"unknown field {number} ({WIRE_NAMES[wire]}) at byte {field_start}: not "
                    f"in {d.full_name}",
                    field_start,
                )
            )
        if wire == LEN:
            pos, length = self.length(pos, end, path)
            return pos + length
        if wire == SGROUP:
            return self.group(number, pos, end, path, depth + 1)
        return self.skip_scalar(wire, pos, end, path)

    def group(self, number: int, pos: int, end: int, path: str, depth: int) -> int:
        """Skip an unknown group's fields up to its end-group; return the position after."""
        if depth > MAX_DEPTH:
            raise _Stop(Fault(self._name(path), f"nested more than {MAX_DEPTH} deep", pos))
        while True:
            if pos >= end:
                raise _Stop(
                    Fault(self._name(path), f"group {number} not closed at byte {end}", end)
                )
            field_start = pos
            pos, inner, wire = self.tag(pos, end, path)
            if wire == EGROUP:
                if inner != number:
                    raise _Stop(
                        Fault(
                            self._name(path),
                            f"group {number} closed as {inner} at byte {field_start}",
                            field_start,
                        )
                    )
                return pos
            if wire == LEN:
                pos, length = self.length(pos, end, path)
                pos += length
            elif wire == SGROUP:
                pos = self.group(inner, pos, end, path, depth + 1)
            else:
                pos = self.skip_scalar(wire, pos, end, path)


def _packed(f: FieldDescriptor, wire: int) -> bool:
    """A repeated scalar sent packed (proto3 packs them; the parser takes either form)."""
    return (
        wire == LEN
        and f.is_repeated
        and f.type not in (_T.TYPE_STRING, _T.TYPE_BYTES, _T.TYPE_MESSAGE, _T.TYPE_GROUP)
    )
