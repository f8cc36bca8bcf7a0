"""README.md keeps what the review asked of it: the two set-up commands at the top,
the architecture diagram, the configuration reference and the required sections.

Each assertion reads the real README and, where the README describes the code
(option names, flags, ``FAAFO_*`` variables, defaults), checks it against the code.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from faafo import config
from faafo.api.main import build_parser as api_parser
from faafo.client.cli import DEFAULT_ENDPOINT
from faafo.client.cli import build_parser as client_parser
from faafo.worker.main import build_parser as worker_parser

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
REFERENCE_OPTIONS = ("listen_address", "bind_port", "database_url", "transport_url", "endpoint_url")
REQUIRED_SECTIONS = (
    "## What survives what",
    "## Scaling out",
    "## Testing against OpenStack",
    "## Deploying to OpenStack",
    "## Observing and scaling",
)


@pytest.fixture(scope="module")
def text() -> str:
    return README.read_text(encoding="utf-8")


def top_of(text: str) -> str:
    """Everything before the first ``## `` heading (fenced blocks cannot hide one: none do)."""
    match = re.search(r"^## ", text, re.M)
    assert match, "README.md has no ## heading at all"
    return text[: match.start()]


def headings(text: str) -> list[str]:
    """``#`` headings outside fenced blocks (a ``# comment`` in a shell block is not one)."""
    return re.findall(r"^#{1,6} .*$", FENCE.sub("", text), re.M)


def section(text: str, heading: str) -> str:
    """The body under ``heading`` up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    assert heading in lines, f"README.md has no heading {heading!r}"
    start = lines.index(heading) + 1
    body: list[str] = []
    in_fence = False
    for line in lines[start:]:
        if line.startswith("```"):
            in_fence = not in_fence
        if not in_fence and re.match(rf"^#{{1,{level}}} ", line):
            break
        body.append(line)
    return "\n".join(body)


def command_after(top: str, marker: str) -> str:
    """The one command line of the fenced block right after ``marker``."""
    assert top.count(marker) == 1, f"{marker} must appear exactly once at the top"
    after = top[top.index(marker) + len(marker) :]
    match = FENCE.match(after.lstrip("\n"))
    assert match, f"no fenced block directly after {marker}"
    lines = [line for line in match.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, f"the block after {marker} must be one command, got {lines}"
    return lines[0]


def steps(command: str) -> list[list[str]]:
    return [shlex.split(part) for part in command.split("&&")]


def test_top_has_exactly_two_fenced_blocks_one_per_marker(text):
    top = top_of(text)
    assert len(FENCE.findall(top)) == 2, "only the run and test commands come before ## headings"
    assert top.index("<!-- run-command -->") < top.index("<!-- test-command -->")
    # Neither marker moves further down the file.
    assert text.count("<!-- run-command -->") == 1
    assert text.count("<!-- test-command -->") == 1


def test_run_command_installs_with_pip_then_runs_faafo_up(text):
    parts = steps(command_after(top_of(text), "<!-- run-command -->"))
    installs = [p for p in parts if len(p) >= 2 and p[0].endswith("pip") and p[1] == "install"]
    assert installs, f"no pip install in {parts}"
    assert "." in installs[0][2:], "it installs this project"
    assert not any("[test]" in arg for arg in installs[0]), "running needs no test extras"
    last = parts[-1]
    assert Path(last[0]).name == "faafo" and last[1:] == ["up"], f"last step is {last}"
    venv_bin = Path(installs[0][0]).parent
    assert Path(last[0]).parent == venv_bin, "faafo comes from the venv pip installed into"
    assert parts.index(installs[0]) < len(parts) - 1, "install before run"


def test_test_command_installs_test_extras_then_runs_pytest(text):
    parts = steps(command_after(top_of(text), "<!-- test-command -->"))
    installs = [p for p in parts if len(p) >= 2 and p[0].endswith("pip") and p[1] == "install"]
    assert installs, f"no pip install in {parts}"
    assert ".[test]" in installs[0][2:], f"the test extras are installed: {installs[0]}"
    last = parts[-1]
    assert Path(last[0]).name.startswith("python") and last[1:3] == ["-m", "pytest"], last
    assert Path(last[0]).parent == Path(installs[0][0]).parent, "pytest runs in that venv"


def test_test_extra_named_by_the_test_command_exists(text):
    # `.[test]` must name a real extra, or pip installs without the test tools.
    pyproject = (README.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^\[project\.optional-dependencies\]\s*\ntest\s*=", pyproject, re.M)


def test_architecture_section_has_a_diagram_of_the_components(text):
    assert "## Architecture" in headings(text)
    body = section(text, "## Architecture")
    diagrams = FENCE.findall(body)
    assert diagrams, "## Architecture has no diagram"
    diagram = diagrams[0]
    for component in ("faafo-api", "faafo-worker", "queue", "database"):
        assert component in diagram, f"the diagram does not show {component}"
    assert any(arrow in diagram for arrow in ("▶", "->", "-->", "▼")), "no arrows in the diagram"


def config_table(text: str) -> dict[str, list[str]]:
    """First-column option names of the ## Configuration table -> that row's cells."""
    rows: dict[str, list[str]] = {}
    for line in section(text, "## Configuration").splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for name in re.findall(r"`([a-z_]+)`", cells[0]):
            rows[name] = cells
    return rows


def test_configuration_table_names_every_reference_option(text):
    rows = config_table(text)
    missing = [name for name in REFERENCE_OPTIONS if name not in rows]
    assert not missing, f"the configuration table lacks {missing}"


def test_configuration_table_defaults_match_the_code(text):
    rows = config_table(text)
    api = config.ApiSettings.model_fields
    assert f"`{api['listen_address'].default}`" in rows["listen_address"][1]
    assert f"`{api['bind_port'].default}`" in rows["bind_port"][1]
    assert f"`{DEFAULT_ENDPOINT}`" in rows["endpoint_url"][1]


def _flags(parser) -> set[str]:
    """The option strings a parser accepts (the client's common ones sit on the top level)."""
    return set(parser._option_string_actions)


@pytest.mark.parametrize("option", REFERENCE_OPTIONS)
def test_configuration_documents_each_options_flag_and_variable(text, option):
    """The flag and the FAAFO_ variable are named in the option's row, or by the section's rule.

    The rule ("Every option is a flag, a `FAAFO_<NAME>` environment variable") is
    only true if the derived names are real, so they are checked against the programs
    the row says use the option.
    """
    flag = "--" + option.replace("_", "-")
    variable = "FAAFO_" + option.upper()
    body = section(text, "## Configuration")
    row = " | ".join(config_table(text)[option])
    named_in_row = flag in row and variable in row
    rule = re.search(r"Every option is a flag, a `FAAFO_<NAME>` environment variable", body)
    assert named_in_row or rule, f"neither {option}'s row nor a rule names {flag} / {variable}"

    users = config_table(text)[option][-1]
    programs = {"api": api_parser(), "worker": worker_parser(), "client": client_parser()}
    named = [name for name in programs if re.search(rf"\b{name}\b", users)]
    assert named, f"the row does not say which program uses {option}: {users!r}"
    for name in named:
        assert flag in _flags(programs[name]), f"{name} has no {flag}, as the README says"
    classes = {"api": config.ApiSettings, "worker": config.WorkerSettings}
    for name in named:
        if name in classes:
            cls = classes[name]
            assert option in cls.model_fields
            assert cls.model_config.get("env_prefix") == "FAAFO_", f"{variable} is not read"


@pytest.mark.parametrize("heading", REQUIRED_SECTIONS)
def test_required_section_is_present_and_not_empty(text, heading):
    assert heading in headings(text), f"README.md lacks {heading!r}"
    body = section(text, heading)
    assert len(body.split()) >= 50, f"{heading!r} is nearly empty"


def test_what_survives_what_states_the_delivery_guarantees(text):
    body = " ".join(section(text, "## What survives what").split())
    assert "committed before its message is published" in body
    assert "acknowledged only after the API stored the result" in body
    assert "stored once" in body
    assert "| failure | what happens | recovery |" in body, "the failure table is gone"
    for failure in ("worker killed", "API killed between commit and publish", "RabbitMQ restart"):
        assert failure in body


def test_scaling_out_has_its_topology_diagram(text):
    body = section(text, "## Scaling out")
    diagrams = FENCE.findall(body)
    assert diagrams and any("worker" in d and "api" in d for d in diagrams)


def test_deploying_and_testing_against_openstack_name_their_tools(text):
    assert "faafo deploy" in section(text, "## Deploying to OpenStack")
    testing = section(text, "## Testing against OpenStack")
    assert "### Running it locally" in testing, "subsections stay inside the section"
    assert "keystone" in testing


def test_observing_and_scaling_covers_metrics_and_autoscaling(text):
    body = section(text, "## Observing and scaling")
    assert "GET /metrics" in body
    assert "faafo autoscale" in body
