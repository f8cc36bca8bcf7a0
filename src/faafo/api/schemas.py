"""Request and response bodies of the v1 API (the original's field names, plus state)."""

from __future__ import annotations

import math
import uuid as uuidlib
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

# Strict: JSON true/false must not pass as 1/0, nor "8" as 8 (the original's clients
# send plain JSON numbers). A strict float still takes a JSON integer.
Pixels = Annotated[int, Strict(), Field(ge=1, description="pixels")]
# JSON allows NaN/Infinity through Python's parser: refuse them explicitly.
Coordinate = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=-1e9, le=1e9)]
Constant = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
Text = Annotated[str, Strict()]


def canonical_uuid(text: str) -> str | None:
    """The lower-case hyphenated form of a UUID (as stored); None if ``text`` is no UUID.

    Accepts what :class:`uuid.UUID` accepts: any case, with or without hyphens or braces.
    """
    try:
        return str(uuidlib.UUID(text))
    except (ValueError, TypeError, AttributeError):
        return None


class TaskCreate(BaseModel):
    """One fractal to render. Omit ``uuid`` to have the API choose one."""

    model_config = ConfigDict(extra="forbid")

    uuid: Text | None = Field(None, description="client-chosen id (a UUID)")
    width: Pixels
    height: Pixels
    iterations: Annotated[int, Strict()] = Field(..., ge=1, description="maximum escape iterations")
    xa: Coordinate
    xb: Coordinate
    ya: Coordinate
    yb: Coordinate
    kind: Text = Field("julia", description="julia or mandelbrot")
    palette: Text = Field("faafo", description="colour palette")
    c_real: Constant | None = Field(None, description="Julia constant, real part")
    c_imag: Constant | None = Field(None, description="Julia constant, imaginary part")
    seed: Annotated[int, Strict()] | None = Field(
        None, ge=0, le=2**63 - 1, description="chooses c reproducibly (Julia sets only)"
    )
    batch: Text | None = Field(None, max_length=36, description="groups tasks for progress")

    @field_validator("uuid")
    @classmethod
    def _well_formed_uuid(cls, value: str | None) -> str | None:
        if value is None:
            return None
        canonical = canonical_uuid(value)
        if canonical is None:
            raise ValueError("uuid must be a well-formed UUID")
        return canonical

    @model_validator(mode="after")
    def _window_and_constant(self) -> TaskCreate:
        if self.xa == self.xb:
            raise ValueError("xa and xb must differ")
        if self.ya == self.yb:
            raise ValueError("ya and yb must differ")
        has_c = self.c_real is not None or self.c_imag is not None
        if (self.c_real is None) != (self.c_imag is None):
            raise ValueError("give both c_real and c_imag, or neither")
        # The same refusals as ``faafo render``: a seed only chooses c, and a
        # Mandelbrot set has no constant (c is each pixel).
        if has_c and self.seed is not None:
            raise ValueError("give either c_real/c_imag or seed, not both")
        if self.kind == "mandelbrot" and (has_c or self.seed is not None):
            raise ValueError("c_real/c_imag and seed apply to kind julia only")
        return self


class FractalOut(BaseModel):
    """A fractal record without its image (the original's fields come first)."""

    uuid: str
    width: int
    height: int
    iterations: int
    xa: float
    xb: float
    ya: float
    yb: float
    duration: float | None = None
    size: int | None = None
    checksum: str | None = None
    generated_by: str | None = None
    url: str | None = None
    status: str
    error: str | None = None
    kind: str
    palette: str
    c_real: float | None = None
    c_imag: float | None = None
    seed: int | None = None
    attempts: int
    batch: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def of(cls, row: Any) -> FractalOut:
        data = {name: getattr(row, name) for name in cls.model_fields}
        for name in ("created_at", "started_at", "finished_at"):
            if data[name] is not None:
                data[name] = data[name].replace(tzinfo=UTC)
        return cls(**data)


class FractalPage(BaseModel):
    """The original's pagination envelope."""

    num_results: int
    objects: list[FractalOut]
    page: int
    total_pages: int


class BatchCreated(BaseModel):
    num_results: int
    objects: list[FractalOut]


class BatchStatus(BaseModel):
    batch: str
    total: int
    counts: dict[str, int]
    finished: bool


class Problem(BaseModel):
    code: int
    message: str
    errors: list[dict[str, Any]] | None = None


class ClaimRequest(BaseModel):
    worker: str = Field(..., min_length=1, max_length=255)
    uuids: list[Annotated[str, Field(max_length=36)]] = Field(..., min_length=1, max_length=10_000)


class ClaimOut(BaseModel):
    uuid: str
    render: bool
    reason: str = ""
    attempt: int = 0
    lease_seconds: float


class FailureReport(BaseModel):
    uuid: str = Field(..., max_length=36)
    error: str = Field(..., max_length=2000)
    worker: str = Field("", max_length=255)


class ResultMeta(BaseModel):
    """What a worker says about one image it uploads."""

    uuid: str = Field(..., max_length=36)
    checksum: str = Field(..., min_length=64, max_length=64)
    duration: float = Field(..., ge=0, allow_inf_nan=False)
    generated_by: str = Field(..., min_length=1, max_length=255)
    c_real: float | None = Field(None, allow_inf_nan=False)
    c_imag: float | None = Field(None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _whole_constant(self) -> ResultMeta:
        # Half a constant could not re-render the image, and every reader expects both.
        if (self.c_real is None) != (self.c_imag is None):
            raise ValueError("give both c_real and c_imag, or neither")
        return self


def finite(value: float) -> bool:
    return math.isfinite(value)
