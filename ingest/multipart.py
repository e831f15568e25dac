"""An upload's multipart body read as it arrives: small form fields kept in memory, the one file part written
straight to a temporary file, everything cut at its limit while reading.

Nothing is spooled before the limits are checked: the file part is counted chunk by chunk and the read stops with
413 the moment it passes ``max_file_bytes``; a form field longer than ``max_field_bytes``, more than
``max_parts`` parts, a second file, a malformed or unfinished body each stop it with a 400 that says which. The
temporary file is removed whenever the read fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import HTTPException
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

_FLUSH = 1 << 20


@dataclasses.dataclass
class UploadForm:
    fields: dict[str, str]
    path: Path | None = None  # the file part on disk (the caller removes it)
    filename: str = ""
    size: int = 0


@dataclasses.dataclass
class _Part:
    headers: dict[bytes, bytes] = dataclasses.field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    data: bytearray = dataclasses.field(default_factory=bytearray)


class _Collector:
    """Parser callbacks: fields into memory, file bytes into a buffer the reader flushes to disk."""

    def __init__(self, file_field: str, max_field_bytes: int, max_parts: int) -> None:
        self.file_field = file_field
        self.max_field_bytes = max_field_bytes
        self.max_parts = max_parts
        self.form = UploadForm(fields={})
        self.pending = bytearray()
        self.parts = 0
        self.files = 0
        self.finished = False
        self._part = _Part()
        self._field = b""
        self._value = b""
        self.error: HTTPException | None = None

    def _fail(self, status: int, detail: str) -> None:
        if self.error is None:
            self.error = HTTPException(status, detail)

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            self._fail(400, f"the upload has more than {self.max_parts} form parts")
        self._part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._part.headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._part.headers.get(b"content-disposition", b""))
        self._part.name = options.get(b"name", b"").decode("utf-8", "replace")[:64]
        raw = options.get(b"filename")
        self._part.filename = None if raw is None else raw.decode("utf-8", "replace")[:128]
        if self._is_file():
            self.files += 1
            if self.files > 1:
                self._fail(400, "the upload may carry one file only")

    def _is_file(self) -> bool:
        return self._part.name == self.file_field

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file():
            self.pending += data[start:end]
            self.form.size += end - start
        else:
            self._part.data += data[start:end]
            if len(self._part.data) > self.max_field_bytes:
                self._fail(400, f"form field {self._part.name!r} is longer than {self.max_field_bytes} bytes")

    def on_part_end(self) -> None:
        if self._is_file():
            self.form.filename = self._part.filename or "upload"
        elif self._part.name:
            self.form.fields[self._part.name] = self._part.data.decode("utf-8", "replace")

    def on_end(self) -> None:
        self.finished = True


async def read_upload(
    content_type: str | None,
    body: AsyncIterator[bytes],
    *,
    file_field: str = "file",
    max_file_bytes: int,
    max_field_bytes: int = 1024,
    max_parts: int = 16,
) -> UploadForm:
    """Read a multipart body; the file part lands in a temporary file named ``feqa-upload-*``."""
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise HTTPException(415, "send the video as multipart/form-data with the file in a field named 'file'")
    if len(boundary) > 200:
        raise HTTPException(400, "the multipart boundary is too long")
    col = _Collector(file_field, max_field_bytes, max_parts)
    callbacks = {name: getattr(col, name) for name in dir(col) if name.startswith("on_")}
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    fd, name = tempfile.mkstemp(prefix="feqa-upload-")
    path = Path(name)
    handle = os.fdopen(fd, "wb")
    ok = False
    try:
        async for chunk in body:
            try:
                parser.write(chunk)
            except MultipartParseError:
                raise HTTPException(400, "the upload is not a well-formed multipart body") from None
            if col.error is not None:
                raise col.error
            if col.form.size > max_file_bytes:
                raise HTTPException(413, f"the upload is larger than the limit of {max_file_bytes} bytes")
            if len(col.pending) >= _FLUSH:
                data, col.pending = bytes(col.pending), bytearray()
                await asyncio.to_thread(handle.write, data)
            if col.finished:
                break
        if not col.finished:
            raise HTTPException(400, "the upload ended before its closing boundary: send it again")
        if col.pending:
            await asyncio.to_thread(handle.write, bytes(col.pending))
        if not col.form.filename:
            raise HTTPException(400, "the upload has no file: put the video in a form field named 'file'")
        col.form.path = path
        ok = True
        return col.form
    finally:
        await asyncio.to_thread(handle.close)
        if not ok:
            await asyncio.to_thread(path.unlink, True)
