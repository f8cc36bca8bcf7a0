"""Accepting rendered images: verify, make a thumbnail if the worker sent none, store once.

A delivered PNG is checked without decoding it: the signature, an IHDR chunk
first (with a valid CRC) whose width and height are those of the task (or of
the band being delivered), and the IEND chunk as the last 12 bytes, so an
image cut short in transit or rendered for another task is refused (422)
instead of being stored as done.
"""

from __future__ import annotations

import io
import logging
import zlib

from starlette.concurrency import run_in_threadpool

from faafo import logs
from faafo.api.errors import ApiError
from faafo.api.schemas import ResultMeta
from faafo.api.services import Services
from faafo.store import fractals as store

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Length 0, type IEND, CRC of "IEND": every complete PNG ends with these 12 bytes.
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_IHDR_END = 8 + 4 + 4 + 13 + 4  # signature, length, type, data, CRC
THUMBNAIL_SIDE = 256
_THUMBNAIL_SOURCE_LIMIT = 8 * 1024 * 1024


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG header, without decoding the image."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def make_thumbnail(png: bytes) -> bytes | None:
    """A small PNG for the gallery, when the image is larger than one.

    None for an image that already fits (it is served as its own thumbnail)
    and for huge images (their workers send one).
    """
    width, height = png_size(png)
    if max(width, height) <= THUMBNAIL_SIDE or len(png) > _THUMBNAIL_SOURCE_LIMIT:
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(png)) as image:
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            out = io.BytesIO()
            image.save(out, format="PNG", compress_level=1)
            return out.getvalue()
    except Exception:
        log.warning("could not make a thumbnail", exc_info=True)
        return None


def png_problem(png: bytes, width: int | None, height: int | None) -> str | None:
    """Why ``png`` is not a complete PNG of ``width`` x ``height`` pixels (None: it is).

    ``width``/``height`` None skips the size check (the task is unknown).
    """
    if not png.startswith(PNG_SIGNATURE):
        return "result is not a PNG"
    if len(png) < _IHDR_END + len(PNG_END) or png[8:16] != b"\x00\x00\x00\rIHDR":
        return "result is not a PNG: no IHDR header"
    if zlib.crc32(png[12:29]) != int.from_bytes(png[29:33], "big"):
        return "result is a corrupt PNG: bad IHDR checksum"
    if not png.endswith(PNG_END):
        return "result is a truncated PNG: it does not end with IEND"
    got = png_size(png)
    if width is not None and height is not None and got != (width, height):
        return f"result is {got[0]}x{got[1]} pixels; the task is {width}x{height}"
    return None


def verify(meta: ResultMeta, png: bytes, size: tuple[int, int] | None = None) -> None:
    """Refuse (422) a PNG that is not complete, not ``size``, or not what its checksum says."""
    problem = png_problem(png, *(size or (None, None)))
    if problem is not None:
        raise ApiError(422, f"{meta.uuid}: {problem}")
    actual = store.sha256_hex(png)
    if actual != meta.checksum.lower():
        raise ApiError(422, f"{meta.uuid}: checksum mismatch (got {actual})")


async def accept_results(
    services: Services, items: list[tuple[ResultMeta, bytes, bytes | None]]
) -> dict[str, str]:
    """Verify every item first (422 on any bad one), then store them in one transaction."""

    def _sizes() -> dict[str, tuple[int, int]]:
        with services.database.reading() as session:
            return store.dimensions(session, [meta.uuid for meta, _, _ in items])

    sizes = await run_in_threadpool(_sizes)
    for meta, png, _ in items:
        # An unknown uuid has no size to check: storing answers "unknown" for it.
        verify(meta, png, sizes.get(meta.uuid))

    def _store() -> dict[str, str]:
        results = [
            store.Result(
                uuid=meta.uuid,
                png=png,
                checksum=meta.checksum.lower(),
                duration=meta.duration,
                generated_by=meta.generated_by,
                c_real=meta.c_real,
                c_imag=meta.c_imag,
                thumbnail=thumbnail if thumbnail is not None else make_thumbnail(png),
            )
            for meta, png, thumbnail in items
        ]
        for _ in range(5):
            try:
                with services.database.session() as session:
                    outcome = store.store_results(session, results, store.utcnow())
                break
            except store.ConcurrentDelivery:
                log.info("a concurrent delivery won a race; storing the batch again")
        else:
            raise ApiError(503, "results kept colliding with concurrent deliveries; retry")
        for result in results:
            with logs.task_context(result.uuid):
                log.info(
                    "result from %s: %s (%d bytes)",
                    result.generated_by,
                    outcome[result.uuid],
                    len(result.png),
                )
            if services.metrics:
                if outcome[result.uuid] == "stored":
                    services.metrics.completed.labels(result.generated_by).inc()
                elif outcome[result.uuid] == "duplicate":
                    services.metrics.duplicates.inc()
        return outcome

    return await run_in_threadpool(_store)
