"""Every message that crosses a process boundary, with its schema version and one encode/decode pair.

A message is a frozen dataclass. On the wire (a Redis stream entry) it is a flat mapping of byte fields:

- ``k``: the message kind (``frame``, ``obs`` ...), ``v``: its schema version (decimal text);
- ``m``: JSON of the scalar fields (numbers, strings, booleans, small dicts and lists);
- ``a:<name>``: each numpy array field, as :func:`common.arrays.encode_array` bytes (never a JSON list);
- ``b:<name>``: each raw ``bytes`` field.

``Message.decode`` refuses an entry of another kind, an unknown schema version, a missing field, a field that is not
what its type says (:mod:`common.wiretypes`: text, 64-bit integers, numbers, an array's kind and declared shape) or
a truncated array with a :class:`~common.errors.DecodeError`; the bus dead-letters such entries. Services never
build field dicts by hand.
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
from common.wiretypes import array_check, scalar_check

Fields = dict[bytes, bytes]
FloatArray = npt.NDArray[np.float32]
ByteArray = npt.NDArray[np.uint8]

_KIND = b"k"
_VERSION = b"v"
_META = b"m"


@dataclasses.dataclass(frozen=True)
class _FieldPlan:
    kind: bytes
    version: bytes
    scalars: tuple[str, ...]
    scalar_set: frozenset[str]
    arrays: tuple[tuple[str, bytes], ...]  # (name, field key)
    blobs: tuple[tuple[str, bytes], ...]
    optional: frozenset[str]
    checks: dict[str, Any]  # name -> common.wiretypes check of a decoded value
    plain: bool  # no __post_init__: decoded fields can be set directly (a frozen dataclass __init__ is slow)


_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=True)  # built once: json.dumps(...) builds one per call
_JSON_IN = json.JSONDecoder()


class Message:
    """Base of all wire messages. Subclasses are frozen dataclasses that set ``KIND`` and ``SCHEMA_VERSION``."""

    KIND: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int]
    ARRAY_SHAPES: ClassVar[dict[str, tuple[int | None, ...]]] = {}  # decoded arrays must have these (None: any)
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
        out: Fields = {_KIND: plan.kind, _VERSION: plan.version}
        out[_META] = _JSON.encode({name: getattr(self, name) for name in plan.scalars}).encode()
        for name, key in plan.arrays:
            value = getattr(self, name)
            if value is not None:
                out[key] = encode_array(value)
        for name, key in plan.blobs:
            value = getattr(self, name)
            if value is not None:
                out[key] = bytes(value)
        return out

    @classmethod
    def decode(cls, fields: Mapping[bytes, bytes]) -> Self:
        """Decode stream fields written by :meth:`encode`; raise :class:`DecodeError` on anything wrong."""
        plan = cls._field_plan()
        kind = fields.get(_KIND)
        if kind != plan.kind:
            raise DecodeError(f"expected a {cls.KIND!r} message, got kind {kind!r}")
        version = fields.get(_VERSION)
        if version is None:
            raise DecodeError(f"{cls.KIND} message has no schema version")
        if version != plan.version:
            raise SchemaVersionError(
                f"{cls.KIND} schema version {version.decode(errors='replace')} is not the supported "
                f"{cls.SCHEMA_VERSION}; upgrade the consumer or drain the stream"
            )
        try:
            meta = _JSON_IN.decode(fields[_META].decode())
        except KeyError:
            raise DecodeError(f"{cls.KIND} message has no metadata field") from None
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: "[[[[..." nested too deep
            raise DecodeError(f"{cls.KIND} metadata is not JSON: {str(exc)[:200]}") from None
        if not isinstance(meta, dict):
            raise DecodeError(f"{cls.KIND} metadata is not an object")
        missing = plan.scalar_set.difference(meta)
        if missing:
            raise DecodeError(f"{cls.KIND} message lacks field {sorted(missing)[0]!r}")
        kwargs: dict[str, Any] = {}
        name = ""
        try:
            for name in plan.scalars:
                kwargs[name] = plan.checks[name](meta[name])
            for items, conv in ((plan.arrays, decode_array), (plan.blobs, bytes)):
                for name, key in items:
                    raw = fields.get(key)
                    if raw is None:
                        if name not in plan.optional:
                            raise DecodeError(f"{cls.KIND} message lacks field {name!r}")
                        kwargs[name] = None
                    else:
                        value = conv(raw)
                        check = plan.checks.get(name)
                        kwargs[name] = value if check is None else check(value)
        except ValueError as exc:
            raise DecodeError(f"{cls.KIND} field {name!r}: {exc}") from None
        if plan.plain:  # every field is in kwargs (checked above): what __init__ would do, without its cost
            obj = cls.__new__(cls)
            obj.__dict__.update(kwargs)
            return obj
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
    checks: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        hint = hints[field.name]
        full = hint
        args = typing.get_args(hint)
        if type(None) in args:
            optional.add(field.name)
            inner = [a for a in args if a is not type(None)]
            hint = inner[0] if len(inner) == 1 else hint
        origin = typing.get_origin(hint) or hint
        if origin is np.ndarray:
            arrays.append(field.name)
            checks[field.name] = array_check(full, cls.ARRAY_SHAPES.get(field.name))
        elif origin is bytes:
            blobs.append(field.name)
        else:
            scalars.append(field.name)
            checks[field.name] = scalar_check(full)
    return _FieldPlan(
        kind=cls.KIND.encode(),
        version=str(cls.SCHEMA_VERSION).encode(),
        scalars=tuple(scalars),
        scalar_set=frozenset(scalars),
        arrays=tuple((n, b"a:" + n.encode()) for n in arrays),
        blobs=tuple((n, b"b:" + n.encode()) for n in blobs),
        optional=frozenset(optional),
        checks=checks,
        plain=not hasattr(cls, "__post_init__"),
    )


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


SESSION_STATES = ("created", "live", "ended")


@dataclasses.dataclass(frozen=True)
class Consent:
    """What the patient agreed to, each flag on its own; all off unless given.

    - ``live_scoring``: models score the session (without it the face is tracked only to coach the patient, and
      kinematics flow; no score is made).
    - ``recording``: the session's video may be kept beyond the live pipeline (off: frames and crops are deleted when
      they leave the live windows, and at the session's end at the latest).
    - ``research``: scores, kinematics and ratings may be exported as research or training labels.
    """

    live_scoring: bool = False
    recording: bool = False
    research: bool = False

    FLAGS: ClassVar[tuple[str, ...]] = ("live_scoring", "recording", "research")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Consent:
        unknown = sorted(set(values) - set(cls.FLAGS))
        if unknown:
            raise ValueError(f"unknown consent flags {unknown}; known: {', '.join(cls.FLAGS)}")
        return cls(**{k: bool(values.get(k, False)) for k in cls.FLAGS})

    def as_dict(self) -> dict[str, bool]:
        return {k: bool(getattr(self, k)) for k in self.FLAGS}


@dataclasses.dataclass(frozen=True)
class SessionInfo:
    """The ``session:{sid}`` hash: who, which protocol, what was consented, and where the session stands.

    Only this class reads or writes that hash (through ``common.bus``): :meth:`encode` gives the whole hash,
    :meth:`changes` a validated partial update (state moves, end), :meth:`decode` refuses a hash of another schema
    version or with a missing or malformed field. Times are epoch seconds; 0 means "not yet".
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    sid: str
    patient_id: str
    protocol: str
    consent: Consent
    state: str  # one of SESSION_STATES
    source: str  # "webrtc" | "file"
    fps: float
    created_ts: float
    started_ts: float = 0.0
    ended_ts: float = 0.0
    end_reason: str = ""
    clinic: str = ""  # the dashboard's clinic id that owns the patient ("" when created outside the dashboard)
    phantom: str = ""  # phantom.spec.PatientSpec JSON of a synthetic patient (demo/test deployments only)
    stats: dict[str, int] = dataclasses.field(default_factory=dict)
    joined_ts: float = 0.0  # the patient agreed on the page and joined
    width: int = 0  # frame size as published (0 until the first frame)
    height: int = 0
    purge_ts: float = 0.0  # set at the end: when the session's keys expire (session retention)
    obs_purge_ts: float = 0.0  # set at the end: when its observations expire (observation retention)

    def __post_init__(self) -> None:
        if self.state not in SESSION_STATES:
            raise ValueError(f"session state must be one of {SESSION_STATES}, got {self.state!r}")

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    @property
    def may_score(self) -> bool:
        """Whether models may score this session. Without live-scoring consent it is tracked only to coach the
        patient, and kinematics flow; every scorer checks this before running a model."""
        return self.consent.live_scoring

    def as_json(self) -> dict[str, Any]:
        """Plain JSON for APIs (consent as a nested object)."""
        out = dataclasses.asdict(self)
        out["consent"] = self.consent.as_dict()
        return out

    def encode(self) -> dict[str, str]:
        """The whole hash as text fields."""
        out = {"v": str(self.SCHEMA_VERSION)}
        for f in dataclasses.fields(self):
            out.update(_info_field(f.name, getattr(self, f.name)))
        return out

    @classmethod
    def changes(cls, **values: Any) -> dict[str, str]:
        """Hash fields for a partial update, e.g. ``SessionInfo.changes(state="ended", ended_ts=t, end_reason=r)``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"SessionInfo has no fields {unknown}")
        if "state" in values and values["state"] not in SESSION_STATES:
            raise ValueError(f"session state must be one of {SESSION_STATES}, got {values['state']!r}")
        out: dict[str, str] = {}
        for name, value in values.items():
            out.update(_info_field(name, value))
        return out

    @classmethod
    def decode(cls, fields: Mapping[bytes | str, bytes | str]) -> SessionInfo:
        """Parse a hash read from Redis; :class:`DecodeError` when it is not a session hash of this version."""
        try:
            text = {_text_field(k): _text_field(v) for k, v in fields.items()}
        except ValueError as exc:
            raise DecodeError(f"session hash is malformed: {exc}") from None
        if not text:
            raise DecodeError("no session hash")
        if text.get("v") != str(cls.SCHEMA_VERSION):
            raise SchemaVersionError(
                f"session hash schema version {text.get('v')!r} is not the supported {cls.SCHEMA_VERSION}"
            )
        try:
            consent = Consent(**{k: text[f"consent_{k}"] == "1" for k in Consent.FLAGS})
            stats = json.loads(text.get("stats", "{}"))
            if not isinstance(stats, dict):
                raise ValueError("stats is not an object")
            return cls(
                sid=text["sid"],
                patient_id=text["patient_id"],
                protocol=text["protocol"],
                consent=consent,
                state=text["state"],
                source=text["source"],
                fps=float(text["fps"]),
                created_ts=float(text["created_ts"]),
                started_ts=float(text.get("started_ts", "0")),
                ended_ts=float(text.get("ended_ts", "0")),
                end_reason=text.get("end_reason", ""),
                clinic=text.get("clinic", ""),
                phantom=text.get("phantom", ""),
                stats={str(k): int(v) for k, v in stats.items()},
                joined_ts=float(text.get("joined_ts", "0")),
                width=int(text.get("width", "0")),
                height=int(text.get("height", "0")),
                purge_ts=float(text.get("purge_ts", "0")),
                obs_purge_ts=float(text.get("obs_purge_ts", "0")),
            )
        except KeyError as exc:
            raise DecodeError(f"session hash lacks field {exc}") from None
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:  # e.g. stats {"n": 1e999}, "[[[[..."
            raise DecodeError(f"session hash is malformed: {str(exc)[:200]}") from None


def _info_field(name: str, value: Any) -> dict[str, str]:
    if name == "consent":
        if not isinstance(value, Consent):
            raise TypeError("consent must be a Consent")
        return {f"consent_{k}": "1" if v else "0" for k, v in value.as_dict().items()}
    if name == "stats":
        return {"stats": json.dumps({str(k): int(v) for k, v in dict(value).items()}, sort_keys=True)}
    if isinstance(value, bool):
        return {name: "1" if value else "0"}
    return {name: repr(float(value)) if isinstance(value, float) else str(value)}


def _text_field(value: bytes | str) -> str:
    """A hash field as text; ``ValueError`` for one that is neither bytes nor valid text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        raise ValueError(f"a field is {type(value).__name__}, not text")
    value.encode("utf-8")  # UnicodeEncodeError (a ValueError) for a lone surrogate
    return value


@dataclasses.dataclass(frozen=True, eq=False)
class Frame(Message):
    """One decoded video frame from ingest. ``encoding`` is one of :data:`common.framecodec.ENCODINGS`.

    ``capture_ts`` is when the sender captured it, on the ingest's wall clock (a live frame: from the sender's RTP
    timestamps, see ingest/clock.py; a file: the file's own frame times), and is what speeds and resampling use;
    ``arrival_ts`` is when the ingest received it (0 for frames that were not received live, e.g. dataset clips).
    """

    KIND: ClassVar[str] = "frame"
    SCHEMA_VERSION: ClassVar[int] = 2
    sid: str
    seq: int
    capture_ts: float
    width: int
    height: int
    encoding: str
    data: bytes
    source_index: int = -1  # phantom frame index read from the pixels, -1 when unknown
    arrival_ts: float = 0.0


@dataclasses.dataclass(frozen=True, eq=False)
class Obs(Message):
    """The tracker's observation of one frame: 106 landmarks or a reason why there is no face."""

    KIND: ClassVar[str] = "obs"
    SCHEMA_VERSION: ClassVar[int] = 1
    ARRAY_SHAPES: ClassVar[dict[str, tuple[int | None, ...]]] = {
        "box": (4,), "landmarks": (106, 2), "landmarks_crop": (106, 2), "pose": (3,), "colours": (106, 3)
    }  # fmt: skip
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
    ARRAY_SHAPES: ClassVar[dict[str, tuple[int | None, ...]]] = {"image": (None, None, 3), "box": (4,)}
    sid: str
    seq: int
    capture_ts: float
    image: ByteArray  # [H, W, 3] uint8 RGB
    box: FloatArray  # [4] x1, y1, x2, y2 in frame px


@dataclasses.dataclass(frozen=True, eq=False)
class Window(Message):
    """Tells the scorer a window of a session is ready: every ``hop`` observations, and once at each task end.

    The window is the frames ``first_seq`` .. ``last_seq`` (inclusive) of ``obs:{sid}`` / ``crops:{sid}``: for a hop,
    the newest T_p observations of the active task (never reaching before ``task_start_seq``); for a task end, the
    whole task clip from ``task_start_seq`` to the task's last frame. ``quality`` summarises every frame in that span
    (the quality gate's aggregates, see tracker/quality.py) and ``failed`` names the gate checks it failed (empty:
    it may be scored). ``task`` is "" when no task is active (kinematics only). ``landmarker`` is the identity of the
    landmarker that made the observations (e.g. ``mediapipe-facemesh/t1``): a scorer only applies a model trained on
    observations of the same landmarker.
    """

    KIND: ClassVar[str] = "window"
    SCHEMA_VERSION: ClassVar[int] = 2
    sid: str
    protocol: str
    task: str
    rep: int
    reason: str  # "hop" | "task_end"
    first_seq: int
    last_seq: int
    task_start_seq: int
    created_ts: float
    landmarker: str
    quality: dict[str, float] = dataclasses.field(default_factory=dict)
    failed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "failed", tuple(str(f) for f in self.failed))
        if self.reason not in ("hop", "task_end"):
            raise ValueError(f"window reason must be 'hop' or 'task_end', got {self.reason!r}")

    @property
    def ok(self) -> bool:
        """Whether the window passed the quality gate."""
        return not self.failed


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
    """A continuous (``kind="window"``) or task (``kind="task"``) score, or why it was withheld.

    ``score`` is the calibrated value on the protocol's scale (``scale_min`` .. ``scale_max``, clamped) and ``raw`` the
    model's own output before calibration; both are None when withheld. ``withheld`` is "" for a score, else the
    reason: ``quality:<check>[,<check>]`` (the window failed the gate), ``no_consent`` (no live-scoring consent),
    ``no_model`` (no artifact for this protocol and task), ``no_task`` (no task active), ``model_error``,
    ``short_window``, ``session_gone``. Kinematics (common/kinematics.py names) are filled for every window, scored
    or not. ``capture_ts`` is the sender's capture time of the window's last frame (for frame-to-score latency).
    """

    KIND: ClassVar[str] = "score"
    SCHEMA_VERSION: ClassVar[int] = 2
    sid: str
    ts: float
    kind: str  # "window" | "task"
    protocol: str
    task: str
    rep: int
    first_seq: int
    last_seq: int
    capture_ts: float
    score: float | None
    raw: float | None
    scale: str  # common.protocols.Scale.name
    scale_min: float
    scale_max: float
    model: str  # "" when no model made it; else e.g. "trampformer:pfed5/smile"
    version: str
    withheld: str = ""
    kinematics: dict[str, float] = dataclasses.field(default_factory=dict)
    quality: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("window", "task"):
            raise ValueError(f"score kind must be 'window' or 'task', got {self.kind!r}")
        if (self.score is None) != bool(self.withheld):
            raise ValueError("a score has a value or a withheld reason, never both or neither")

    @property
    def key(self) -> str:
        """Idempotency key: one task score per (session, task, repetition, task clip end)."""
        return f"{self.sid}:{self.kind}:{self.task}:{self.rep}:{self.last_seq}"


@dataclasses.dataclass(frozen=True, eq=False)
class Health(Message):
    """A service instance's counters (drops, lag, latency per stage), published every few seconds.

    ``counters`` are cumulative counts since the instance started (frames_in, frames_dropped, windows_stale ...);
    ``gauges`` are current values (lag_ms, latency_p50_ms, latency_p99_ms, sessions ...). Names are the service's own
    and documented in its worker module.
    """

    KIND: ClassVar[str] = "health"
    SCHEMA_VERSION: ClassVar[int] = 1
    service: str  # "ingest" | "tracker" | "scorer" | "dashboard"
    instance: str
    ts: float
    started_ts: float
    counters: dict[str, float] = dataclasses.field(default_factory=dict)
    gauges: dict[str, float] = dataclasses.field(default_factory=dict)


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
            parts = []
            for _ in ("key", "value"):
                if pos + 4 > len(blob):
                    raise DecodeError("truncated dead-letter blob")
                (n,) = struct.unpack_from("<I", blob, pos)
                if pos + 4 + n > len(blob):
                    raise DecodeError("truncated dead-letter blob")
                parts.append(blob[pos + 4 : pos + 4 + n])
                pos += 4 + n
            if parts[0] in out:
                raise DecodeError("dead-letter blob repeats a field")
            out[parts[0]] = parts[1]
        return out


ALL_MESSAGES: tuple[type[Message], ...] = tuple(_REGISTRY_PENDING)
BY_KIND: dict[str, type[Message]] = {cls.KIND: cls for cls in ALL_MESSAGES}


def peek_kind(fields: Mapping[bytes, bytes]) -> str:
    """The kind of an encoded entry, or "" when it has none."""
    return fields.get(_KIND, b"").decode(errors="replace")
