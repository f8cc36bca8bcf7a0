"""Token checks take constant time: every comparison goes through ``hmac.compare_digest``.

``faafo.api.auth`` calls ``hmac.compare_digest`` through the ``hmac`` module, so
replacing the module's attribute with a recording wrapper sees every comparison
the API makes while answering a request through the real application.
"""

from __future__ import annotations

import hmac
import threading

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.conftest import task
from faafo.api import auth
from faafo.api.app import create_app

CLIENT = "client-secret-token"
OLD_WORKER, WORKER = "old-worker-token", "worker-secret-token"
WRONG = "not-a-token-at-all"


class Recorder:
    """Wraps ``hmac.compare_digest``: records each pair, answers as the real one (or ``forced``)."""

    def __init__(self, real) -> None:
        self.real = real
        self.calls: list[tuple[bytes, bytes]] = []
        self.forced: bool | None = None
        self.lock = threading.Lock()

    def __call__(self, a, b) -> bool:
        with self.lock:
            self.calls.append((bytes(a), bytes(b)))
        answer = self.real(a, b)
        return answer if self.forced is None else self.forced

    def given(self, token: str) -> list[bytes]:
        """The accepted tokens that ``token`` was compared with, in order."""
        with self.lock:
            return [b for a, b in self.calls if a == token.encode()]

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()


@pytest.fixture
def recorder(monkeypatch):
    assert auth.hmac is hmac, "auth compares through the hmac module"
    wrapper = Recorder(hmac.compare_digest)
    monkeypatch.setattr(auth.hmac, "compare_digest", wrapper)
    return wrapper


@pytest.fixture
def secured(settings):
    settings.client_token = SecretStr(CLIENT)
    settings.worker_token = SecretStr(f"{OLD_WORKER},{WORKER}")
    with TestClient(create_app(settings)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create(client: TestClient, token: str):
    return client.post("/v1/fractal", json=task(), headers=bearer(token))


def claim(client: TestClient, token: str, uuid: str):
    return client.post(
        "/v1/worker/claim", json={"worker": "w", "uuids": [uuid]}, headers=bearer(token)
    )


def test_the_client_token_is_compared_with_compare_digest(secured, recorder):
    recorder.reset()
    right = create(secured, CLIENT)
    assert right.status_code == 201, right.text
    assert recorder.given(CLIENT) == [CLIENT.encode()]

    recorder.reset()
    wrong = create(secured, WRONG)
    assert wrong.status_code == 403, wrong.text
    assert recorder.given(WRONG) == [CLIENT.encode()]

    recorder.reset()
    missing = secured.post("/v1/fractal", json=task())
    assert missing.status_code == 401, missing.text
    assert recorder.calls == [], "nothing to compare without a token"


def test_the_client_token_is_refused_when_compare_digest_says_no(secured, recorder):
    """The answer is compare_digest's, not that of an ``==`` beside it."""
    recorder.forced = False
    assert create(secured, CLIENT).status_code == 403
    assert recorder.given(CLIENT) == [CLIENT.encode()]


def test_the_worker_token_is_compared_with_compare_digest(secured, recorder):
    uuid = create(secured, CLIENT).json()["uuid"]

    recorder.reset()
    right = claim(secured, WORKER, uuid)
    assert right.status_code == 200, right.text
    assert right.json()[0]["render"] is True
    assert recorder.given(WORKER) == [OLD_WORKER.encode(), WORKER.encode()]

    recorder.reset()
    wrong = claim(secured, WRONG, uuid)
    assert wrong.status_code == 403, wrong.text
    assert recorder.given(WRONG) == [OLD_WORKER.encode(), WORKER.encode()]

    recorder.reset()
    missing = secured.post("/v1/worker/claim", json={"worker": "w", "uuids": [uuid]})
    assert missing.status_code == 401, missing.text
    assert recorder.calls == []


def test_every_accepted_worker_token_is_compared_even_after_a_match(secured, recorder):
    """No early exit: the first token matching still costs the comparison with the rest."""
    uuid = create(secured, CLIENT).json()["uuid"]
    recorder.reset()
    assert claim(secured, OLD_WORKER, uuid).status_code == 200
    assert recorder.given(OLD_WORKER) == [OLD_WORKER.encode(), WORKER.encode()]


def test_the_worker_token_is_refused_when_compare_digest_says_no(secured, recorder):
    uuid = create(secured, CLIENT).json()["uuid"]
    recorder.forced = False
    assert claim(secured, WORKER, uuid).status_code == 403
    assert recorder.given(WORKER) == [OLD_WORKER.encode(), WORKER.encode()]


def test_a_client_token_is_not_a_worker_token_and_back(secured, recorder):
    uuid = create(secured, CLIENT).json()["uuid"]
    recorder.reset()
    assert claim(secured, CLIENT, uuid).status_code == 403
    assert recorder.given(CLIENT) == [OLD_WORKER.encode(), WORKER.encode()]
    recorder.reset()
    assert create(secured, WORKER).status_code == 403
    assert recorder.given(WORKER) == [CLIENT.encode()]
