"""The package installs its three programs, and importing it does no work."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points


def test_console_scripts():
    scripts = {
        e.name: e.value for e in entry_points(group="console_scripts") if e.name.startswith("faafo")
    }
    assert scripts == {
        "faafo": "faafo.client.cli:main",
        "faafo-api": "faafo.api.main:main",
        "faafo-worker": "faafo.worker.main:main",
    }


def test_imports_are_cheap_and_side_effect_free(tmp_path):
    code = "import faafo.api.app, faafo.worker.runner, faafo.client.cli, faafo.config"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == [], "importing created files"


def test_cli_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "faafo.client.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("create", "list", "show", "get", "delete", "up", "render"):
        assert command in out
