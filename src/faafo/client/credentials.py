"""Where the CLI finds its token when none is given: the file ``faafo up`` writes.

``faafo up`` generates a client token per data directory and records it here
under the URLs it serves, so the laptop experience stays one command: the
local CLI authenticates by itself. The file is readable by its owner only.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

_LOCAL = {"localhost", "127.0.0.1", "::1", "[::1]"}


def credentials_file() -> Path:
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "faafo" / "credentials.json"


def _key(endpoint: str) -> str | None:
    try:
        parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # not a URL: the client reports it when it tries to use it
        return None
    if host in _LOCAL:
        host = "localhost"
    return f"{parts.scheme or 'http'}://{host}:{port}"


def _load(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def lookup(endpoint: str, path: Path | None = None) -> str | None:
    key = _key(endpoint)
    if key is None:
        return None
    token = _load(path or credentials_file()).get(key)
    return token if isinstance(token, str) and token else None


def remember(endpoint: str, token: str, path: Path | None = None) -> None:
    path = path or credentials_file()
    data = _load(path)
    key = _key(endpoint)
    if key is None:
        raise ValueError(f"not a URL: {endpoint!r}")
    data[key] = token
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
    tmp.replace(path)
