"""Idempotency keys: a retried create request gets its original answer, not a 409.

A client (or a load balancer retrying after a lost answer) that repeats a
``POST /v1/fractal`` with the same ``Idempotency-Key`` header and the same body
gets the tasks the first request created. Without a key, an existing uuid is
always a conflict. The key is stored hashed, with a hash of the request body,
in the transaction that inserts the tasks, so a request and its retry racing
on two API processes still create the tasks once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from faafo.store.models import IdempotencyKey

# How long a key is remembered: far longer than any retry loop.
KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class KeyReused(Exception):
    """The key came before with a different body: a client bug, never a retry."""

    def __init__(self) -> None:
        super().__init__(
            "Idempotency-Key was already used for a different request; "
            "use a new key for every new request"
        )


class ReplayGone(Exception):
    """A retried request whose tasks have been deleted since."""

    def __init__(self, uuids: list[str]) -> None:
        super().__init__(
            "the request with this Idempotency-Key created tasks that were deleted since: "
            + ", ".join(uuids[:5])
        )


@dataclass(frozen=True)
class Request:
    """A create request identified by its key and its body."""

    key_hash: str
    request_hash: str

    @classmethod
    def of(cls, key: str, payload: Any) -> Request:
        """Hash the key and the parsed body (canonical JSON: formatting does not count)."""
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return cls(
            key_hash=hashlib.sha256(key.encode()).hexdigest(),
            request_hash=hashlib.sha256(body.encode()).hexdigest(),
        )


def earlier(session: Session, request: Request) -> list[str] | None:
    """The uuids an earlier request with this key created, in order; None if it is new.

    Raises :class:`KeyReused` when the key came with another body.
    """
    row = session.get(IdempotencyKey, request.key_hash)
    if row is None:
        return None
    if row.request_hash != request.request_hash:
        raise KeyReused
    return list(json.loads(row.uuids))


def remember(session: Session, request: Request, uuids: list[str], now: datetime) -> None:
    """Record the key with what it created, in the transaction that creates it.

    A concurrent request with the same key makes this (or the task insert) fail
    with an IntegrityError at commit or before; the caller then reads it back.
    """
    session.execute(
        insert(IdempotencyKey),
        [
            {
                "key_hash": request.key_hash,
                "request_hash": request.request_hash,
                "uuids": json.dumps(uuids),
                "created_at": now,
            }
        ],
    )


def forget_expired(session: Session, now: datetime) -> int:
    """Drop keys older than :data:`KEY_LIFETIME`; returns how many."""
    return session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < now - KEY_LIFETIME)
    ).rowcount
