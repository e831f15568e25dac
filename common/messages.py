"""Every message that crosses a process boundary, with its schema version and one encode/decode pair.

A message is a frozen dataclass. On the wire (a Redis stream entry) it is a flat mapping of byte fields:

- ``k``: the message kind (``frame``, ``obs`` ...), ``v``: its schema version (decimal text);
- ``m``: JSON of the scalar fields (numbers, strings, booleans, small dicts and lists);
- ``a:<name>``: each numpy array field, as :func:`common.arrays.encode_array` bytes (never a JSON list);
- ``b:<name>``: each raw ``bytes`` field.

``Message.decode`` refuses an entry of another kind, an unknown schema version, a missing field or a truncated
array with a :class:`~common.errors.DecodeError`; the bus dead-letters such entries. Services never build field
dicts by hand.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from common.arrays import decode_array, encode_array
from common.errors import DecodeError, SchemaVersionError

Fields = dict[bytes, bytes]
FloatArray = npt.NDArray[np.float32]
ByteArray = npt.NDArray[np.uint8]

_KIND = b"k"
_VERSION = b"v"
_META = b"m"


@dataclasses.dataclass(frozen=True)
class _FieldPlan:
    scalars: tuple[str, ...]
    arrays: tuple[str, ...]
    blobs: tuple[str, ...]
    optional: frozenset[str]


class Message:
    """Base of all wire messages. Subclasses are frozen dataclasses that set ``KIND`` and ``SCHEMA_VERSION``."""

    KIND: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int]
    _plan: ClassVar[_FieldPlan]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY_PENDING.append(cls)

    @classmethod
    def _field_plan(cls) -> _FieldPlan:
        plan = cls.__dict__.get("_plan")
        if plan is None:
            plan = _plan_for(cls)
            cls._plan = plan
        return plan

    def encode(self) -> Fields:
        """Encode to Redis stream fields."""
        plan = self._field_plan()
        out: Fields = {_KIND: self.KIND.encode(), _VERSION: str(self.SCHEMA_VERSION).encode()}
        meta = {name: getattr(self, name) for name in plan.scalars}
        out[_META] = json.dumps(meta, separators=(",", ":"), allow_nan=True).encode()
        for name in plan.arrays:
            value = getattr(self, name)
            if value is not None:
                out[b"a:" + name.encode()] = encode_array(value)
        for name in plan.blobs:
            value = getattr(self, name)
            if value is not None:
                out[b"b:" + name.encode()] = bytes(value)
        return out

    @classmethod
    def decode(cls, fields: Mapping[bytes, bytes]) -> Self:
        """Decode stream fields written by :meth:`encode`; raise :class:`DecodeError` on anything wrong."""
        kind = fields.get(_KIND)
        if kind != cls.KIND.encode():
            raise DecodeError(f"expected a {cls.KIND!r} message, got kind {kind!r}")
        version = fields.get(_VERSION)
        if version is None:
            raise DecodeError(f"{cls.KIND} message has no schema version")
        if version != str(cls.SCHEMA_VERSION).encode():
            raise SchemaVersionError(
                f"{cls.KIND} schema version {version.decode(errors='replace')} is not the supported "
                f"{cls.SCHEMA_VERSION}; upgrade the consumer or drain the stream"
            )
        plan = cls._field_plan()
        try:
            meta = json.loads(fields[_META])
        except KeyError:
            raise DecodeError(f"{cls.KIND} message has no metadata field") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise DecodeError(f"{cls.KIND} metadata is not JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise DecodeError(f"{cls.KIND} metadata is not an object")
        kwargs: dict[str, Any] = {}
        for name in plan.scalars:
            if name not in meta:
                raise DecodeError(f"{cls.KIND} message lacks field {name!r}")
            kwargs[name] = meta[name]
        for prefix, names, conv in ((b"a:", plan.arrays, decode_array), (b"b:", plan.blobs, bytes)):
            for name in names:
                raw = fields.get(prefix + name.encode())
                if raw is None:
                    if name not in plan.optional:
                        raise DecodeError(f"{cls.KIND} message lacks field {name!r}")
                    kwargs[name] = None
                else:
                    kwargs[name] = conv(raw)
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"{cls.KIND} message is malformed: {exc}") from None


_REGISTRY_PENDING: list[type[Message]] = []


def _plan_for(cls: type[Message]) -> _FieldPlan:
    hints = typing.get_type_hints(cls, globalns=globals())
    scalars: list[str] = []
    arrays: list[str] = []
    blobs: list[str] = []
    optional: set[str] = set()
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        hint = hints[field.name]
        args = typing.get_args(hint)
        if type(None) in args:
            optional.add(field.name)
            inner = [a for a in args if a is not type(None)]
            hint = inner[0] if len(inner) == 1 else hint
        origin = typing.get_origin(hint) or hint
        if origin is np.ndarray:
            arrays.append(field.name)
        elif origin is bytes:
            blobs.append(field.name)
        else:
            scalars.append(field.name)
    return _FieldPlan(tuple(scalars), tuple(arrays), tuple(blobs), frozenset(optional))


# ----------------------------------------------------------------------------------------------- messages


@dataclasses.dataclass(frozen=True, eq=False)
class SessionAnnounce(Message):
    """A session started or ended (global ``sessions`` stream), so workers learn which streams to read."""

    KIND: ClassVar[str] = "session"
    SCHEMA_VERSION: ClassVar[int] = 1
    sid: str
    state: str  # "started" | "ended"
    protocol: str
    ts: float
    reason: str = ""


@dataclasses.dataclass(frozen=True, eq=False)
class Frame(Message):
    """One decoded video frame from ingest. ``encoding`` is one of :data:`common.framecodec.ENCODINGS`."""

    KIND: ClassVar[str] = "frame"
    SCHEMA_VERSION: ClassVar[int] = 1
    sid: str
    seq: int
    capture_ts: float
    width: int
    height: int
    encoding: str
    data: bytes
    source_index: int = -1  # phantom frame index read from the pixels, -1 when unknown


@dataclasses.dataclass(frozen=True, eq=False)
class Obs(Message):
    """The tracker's observation of one frame: 106 landmarks or a reason why there is no face."""

    KIND: ClassVar[str] = "obs"
    SCHEMA_VERSION: ClassVar[int] = 1
    sid: str
    seq: int
    capture_ts: float
    frame_w: int
    frame_h: int
    face: bool
    # "" for a clean face; else why not (e.g. "no_face", "tiny_face", "corrupt_frame", "stale"), or a caveat that
    # keeps face=True ("several_faces": the patient is still tracked, others in view are ignored)
    reason: str
    det_score: float = 0.0
    box: FloatArray | None = None  # [4] x1, y1, x2, y2 in frame px
    landmarks: FloatArray | None = None  # [106, 2] frame px
    landmarks_crop: FloatArray | None = None  # [106, 2] px of the 256x256 reference crop (models.md §5)
    pose: FloatArray | None = None  # [3] yaw, pitch, roll in degrees
    colours: ByteArray | None = None  # [106, 3] RGB at each landmark
    quality: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, eq=False)
class Crop(Message):
    """An aligned RGB face crop for the RGB encoder, with the frame box it was cut from."""

    KIND: ClassVar[str] = "crop"
    SCHEMA_VERSION: ClassVar[int] = 1
    sid: str
    seq: int
    capture_ts: float
    image: ByteArray  # [H, W, 3] uint8 RGB
    box: FloatArray  # [4] x1, y1, x2, y2 in frame px


@dataclasses.dataclass(frozen=True, eq=False)
class Window(Message):
    """Tells the scorer a window of a session is ready: every hop, and at each task end."""

    KIND: ClassVar[str] = "window"
    SCHEMA_VERSION: ClassVar[int] = 1
    sid: str
    last_seq: int
    task: str
    reason: str  # "hop" | "task_end"
    task_start_seq: int
    created_ts: float
    quality: dict[str, float] = dataclasses.field(default_factory=dict)  # the tracker's window quality gate


@dataclasses.dataclass(frozen=True, eq=False)
class Event(Message):
    """Session events: task_start, task_end, marker, session_end, and coaching messages for the patient."""

    KIND: ClassVar[str] = "event"
    SCHEMA_VERSION: ClassVar[int] = 1
    sid: str
    type: str  # "task_start" | "task_end" | "marker" | "session_end" | "coach"
    ts: float
    protocol: str = ""
    task: str = ""
    rep: int = 0
    text: str = ""
    seq: int = -1


@dataclasses.dataclass(frozen=True, eq=False)
class Score(Message):
    """A continuous (window) or task score, or the reason it was withheld, with kinematics and quality."""

    KIND: ClassVar[str] = "score"
    SCHEMA_VERSION: ClassVar[int] = 1
    sid: str
    ts: float
    seq: int
    task: str
    kind: str  # "window" | "task"
    score: float | None
    model: str
    version: str
    withheld: str = ""
    kinematics: dict[str, float] = dataclasses.field(default_factory=dict)
    quality: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, eq=False)
class DeadLetter(Message):
    """An entry that could not be decoded, copied aside with why; ``original`` packs its fields."""

    KIND: ClassVar[str] = "deadletter"
    SCHEMA_VERSION: ClassVar[int] = 1
    stream: str
    entry_id: str
    error: str
    consumer: str
    ts: float
    original: bytes

    @staticmethod
    def pack_fields(fields: Mapping[bytes, bytes]) -> bytes:
        """Pack arbitrary fields as (u32 len, key, u32 len, value)*."""
        parts = []
        for key, value in fields.items():
            parts.append(struct.pack("<I", len(key)) + key + struct.pack("<I", len(value)) + value)
        return b"".join(parts)

    @staticmethod
    def unpack_fields(blob: bytes) -> dict[bytes, bytes]:
        """Inverse of :meth:`pack_fields`."""
        out: dict[bytes, bytes] = {}
        pos = 0
        while pos < len(blob):
            if pos + 4 > len(blob):
                raise DecodeError("truncated dead-letter blob")
            (klen,) = struct.unpack_from("<I", blob, pos)
            key = blob[pos + 4 : pos + 4 + klen]
            pos += 4 + klen
            if pos + 4 > len(blob):
                raise DecodeError("truncated dead-letter blob")
            (vlen,) = struct.unpack_from("<I", blob, pos)
            out[key] = blob[pos + 4 : pos + 4 + vlen]
            pos += 4 + vlen
        return out


ALL_MESSAGES: tuple[type[Message], ...] = tuple(_REGISTRY_PENDING)
BY_KIND: dict[str, type[Message]] = {cls.KIND: cls for cls in ALL_MESSAGES}


def peek_kind(fields: Mapping[bytes, bytes]) -> str:
    """The kind of an encoded entry, or "" when it has none."""
    return fields.get(_KIND, b"").decode(errors="replace")
