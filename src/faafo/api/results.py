"""Accepting rendered images: verify, make a thumbnail if the worker sent none, store once."""

from __future__ import annotations

import io
import logging

from starlette.concurrency import run_in_threadpool

from faafo import logs
from faafo.api.errors import ApiError
from faafo.api.schemas import ResultMeta
from faafo.api.services import Services
from faafo.store import fractals as store

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
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


def verify(meta: ResultMeta, png: bytes) -> None:
    if not png.startswith(PNG_SIGNATURE):
        raise ApiError(422, f"{meta.uuid}: result is not a PNG")
    actual = store.sha256_hex(png)
    if actual != meta.checksum.lower():
        raise ApiError(422, f"{meta.uuid}: checksum mismatch (got {actual})")


async def accept_results(
    services: Services, items: list[tuple[ResultMeta, bytes, bytes | None]]
) -> dict[str, str]:
    """Verify every item first (422 on any bad one), then store them in one transaction."""
    for meta, png, _ in items:
        verify(meta, png)

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
