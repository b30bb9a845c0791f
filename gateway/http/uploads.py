"""Reading images out of requests: the raw body, or the parts of a multipart form read without a form parser (which
would decode a part without a file name as text). Parts are parsed as the body arrives and each is checked as it
grows, so a request holds one copy of what it keeps and nothing of what it refuses; a batch's parts go to temporary
files past their first megabyte, so that its 64 images of 6 MiB are never all in memory at once (the labelling
service reads them a few at a time). The body's own limit is the guard's (guard.py, limits.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from kubevision.core.images import MAX_IMAGE_BYTES
from kubevision.core.labelstore.store import MAX_BATCH
from kubevision.gateway.errors import CustomVisionError, ServiceUnavailable, UnsupportedMediaType, image_too_large
from kubevision.gateway.http.limits import is_multipart

SPOOL_BYTES = 1024 * 1024  # a batch's part past this size waits on disk (the pod's /tmp), not in memory


def _check_media_type(content_type: str) -> None:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in ("application/octet-stream", "") and not media_type.startswith("image/"):
        raise UnsupportedMediaType(f"Content-Type {media_type} is not accepted: send multipart/form-data or "
                                   "application/octet-stream.")


async def image_bytes(request: Request, limit: int) -> bytes:
    """The image of a request: the first part of a multipart form (the SDKs send one part, imageData, often
    without a file name), or the raw body. Over `limit` bytes is BadRequestImageSizeBytes."""
    content_type = request.headers.get("content-type", "")
    if is_multipart(content_type):
        parts = Parts(content_type, keep=1, part_limit=limit, over_limit="refuse")
        await parts.read(request)
        if not parts.parts:
            raise CustomVisionError("The form holds no image (imageData).", "BadRequestImageStream")
        return parts.parts[0]
    _check_media_type(content_type)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise image_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class BatchParts:
    """The images of an upload, each read when the labelling service wants it; close() removes their files."""

    def __init__(self, files: list[tempfile.SpooledTemporaryFile] | None = None, data: bytes | None = None):
        self.files = files or []
        self.data = data

    def readers(self) -> list[Callable[[], bytes]]:
        if self.data is not None:
            return [lambda: self.data]
        return [_reader(file) for file in self.files]

    def close(self) -> None:
        for file in self.files:
            file.close()


def _reader(file: tempfile.SpooledTemporaryFile) -> Callable[[], bytes]:
    def read() -> bytes:
        file.seek(0)
        return file.read()

    return read


async def all_parts(request: Request) -> BatchParts:
    """Every part of a multipart form (one image each), or the raw body as one image. A part over the image limit
    is kept only to one byte past it, so that the store still answers that image ErrorImageSize; a part past the
    batch's 64 is BadRequestImageBatch at once."""
    content_type = request.headers.get("content-type", "")
    if not is_multipart(content_type):
        _check_media_type(content_type)
        return BatchParts(data=await image_bytes(request, MAX_IMAGE_BYTES + 1))  # one byte over: ErrorImageSize
    parts = Parts(content_type, keep=MAX_BATCH, part_limit=MAX_IMAGE_BYTES + 1, over_limit="truncate", spool=True)
    try:
        await parts.read(request)
    except OSError as error:  # /tmp is full: other uploads hold it
        parts.close()
        raise ServiceUnavailable(f"No room for this upload now: {error.strerror}.", 5,
                                 "ErrorPredictionServiceUnavailable") from error
    except BaseException:
        parts.close()
        raise
    return BatchParts(files=parts.files)


class Parts:
    """A multipart body parsed chunk by chunk: the first `keep` parts, each as one bytes object (or, with `spool`,
    one temporary file). A part that grows past `part_limit` is refused (BadRequestImageSizeBytes) or truncated
    there; a part past `keep` is refused (BadRequestImageBatch) when `keep` is a batch, and ignored when it is one
    image."""

    def __init__(self, content_type: str, keep: int, part_limit: int, over_limit: str, spool: bool = False):
        _, options = parse_options_header(content_type)
        if not options.get(b"boundary"):
            raise CustomVisionError("The multipart body has no boundary.", "BadRequestImageStream")
        self.keep, self.part_limit, self.over_limit, self.spool = keep, part_limit, over_limit, spool
        self.parts: list[bytes] = []
        self.files: list[tempfile.SpooledTemporaryFile] = []
        self.count = 0
        self._chunks: list[bytes] = []
        self._size = 0
        self._parser = MultipartParser(options[b"boundary"], {
            "on_part_begin": self._begin, "on_part_data": self._data, "on_part_end": self._end})

    async def read(self, request: Request) -> None:
        try:
            async for chunk in request.stream():
                self._parser.write(chunk)
            self._parser.finalize()
        except MultipartParseError as error:
            raise CustomVisionError(f"The multipart body cannot be read: {error}", "BadRequestImageStream") from error

    def close(self) -> None:
        for file in self.files:
            file.close()

    def _begin(self) -> None:
        self.count += 1
        if self.count > self.keep and self.keep > 1:
            raise CustomVisionError(f"A batch holds at most {self.keep} images.", "BadRequestImageBatch")
        self._chunks, self._size = [], 0
        if self.spool and self.count <= self.keep:
            self.files.append(tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.count > self.keep or self._size > self.part_limit:
            return  # a part not kept, or already one byte past its limit
        piece = data[start:min(end, start + self.part_limit + 1 - self._size)]
        self._size += end - start
        if self._size > self.part_limit and self.over_limit == "refuse":
            raise image_too_large(self.part_limit)
        if self.spool:
            self.files[-1].write(piece)
        else:
            self._chunks.append(piece)

    def _end(self) -> None:
        if self.count <= self.keep and not self.spool:
            self.parts.append(b"".join(self._chunks))
        self._chunks = []
