"""Settings for every faafo service: flags > ``FAAFO_*`` environment > INI file > defaults.

The original parsed its configuration at import time, so nothing could be tested
without editing ``/etc``. Here a settings object is built explicitly by
:func:`load_settings` and handed to the app factories; importing this module
does no work.

The INI file keeps the original's layout: options in ``[DEFAULT]`` with the
same names as the flags (``database_url``, ``bind_port``...). A service also
reads its own section (``[api]``, ``[worker]``), which wins over ``[DEFAULT]``,
so one file can configure a whole host.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import contextlib
import difflib
import os
import sys
from pathlib import Path
from typing import Any, ClassVar, NoReturn, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from faafo.logs import check_log_format, check_log_level
from faafo.urls import check_database_url, check_endpoint_urls, check_transport_url

DEFAULT_CONFIG_FILE = Path("/etc/faafo/faafo.conf")
DEFAULT_PORT = 8080
DEFAULT_ENDPOINT_URL = f"http://localhost:{DEFAULT_PORT}"


class ConfigurationError(ValueError):
    """Settings that do not validate; the message (one line) names the option or file."""


def default_data_dir() -> Path:
    """The per-user data directory (XDG on Linux, Application Support on macOS)."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "faafo"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "faafo"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "faafo"


def embedded_database_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'faafo.sqlite3'}"


def embedded_transport_url(data_dir: Path) -> str:
    return f"embedded://{Path(data_dir).resolve() / 'queue.sqlite3'}"


class _IniSource(PydanticBaseSettingsSource):
    """Values read from the INI file, below the environment and the flags."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, str]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


class CommonSettings(BaseSettings):
    """Options every service shares."""

    # Errors never echo the input: it may be a token or a URL with a password.
    model_config = SettingsConfigDict(
        env_prefix="FAAFO_", extra="ignore", hide_input_in_errors=True
    )
    ini_section: ClassVar[str] = "DEFAULT"

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="directory for the embedded database and queue",
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy URL of the database (default: SQLite in --data-dir); "
        "postgresql+psycopg://..., mysql+pymysql://...",
    )
    transport_url: str = Field(
        "",
        description="kombu URL of the message queue (default: the embedded queue in --data-dir); "
        "amqp://user:password@host:5672//",
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_format: str = Field("text", description="text or json")

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        return check_log_level(value)

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        return check_log_format(value)

    @field_validator("transport_url")
    @classmethod
    def _transport_url(cls, value: str) -> str:
        return check_transport_url(value) if value else value

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> CommonSettings:
        if not self.database_url:
            self.database_url = embedded_database_url(self.data_dir)
        if not self.transport_url:
            self.transport_url = embedded_transport_url(self.data_dir)
        return self


class ApiSettings(CommonSettings):
    """Options of ``faafo-api``."""

    ini_section: ClassVar[str] = "api"

    listen_address: str = Field("0.0.0.0", description="address the API listens on")
    bind_port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="TCP port of the API")
    max_pixels: int = Field(
        100_000_000, ge=1, description="largest width x height a task may ask for"
    )
    max_side: int = Field(
        65_536,
        ge=1,
        le=2**20,  # faafo.engine.spec.MAX_SIDE, the engine's own limit
        description="largest width or height a task may ask for (a worker needs about "
        "23 bytes per pixel of a row)",
    )
    max_iterations: int = Field(
        10_000, ge=1, description="largest iteration count a task may ask for"
    )
    max_tasks_per_request: int = Field(
        1000, ge=1, description="largest number of tasks one create request may carry"
    )
    max_request_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="largest JSON request body in bytes"
    )
    max_upload_bytes: int = Field(
        512 * 1024 * 1024, ge=1024, description="largest result upload in bytes"
    )
    bundle_cost: int = Field(
        20_000_000,
        ge=0,
        description="small tasks created together are sent to workers in bundles of at most this "
        "many pixel-iterations (0 sends every task alone)",
    )
    max_bundle_tasks: int = Field(64, ge=1, description="most tasks in one bundle message")
    band_cost: int = Field(
        2_000_000_000,
        ge=1,
        description="a task costing more pixel-iterations than this is split into bands that "
        "several workers render in parallel",
    )
    lease_seconds: float = Field(
        60.0,
        gt=0,
        description="a running task whose worker stops renewing it for this long is sent again",
    )
    publish_grace_seconds: float = Field(
        10.0,
        gt=0,
        description="a queued task whose publish is not confirmed after this long is "
        "published again",
    )
    reconcile_interval: float = Field(
        5.0, gt=0, description="seconds between checks for lost or stuck tasks"
    )
    max_attempts: int = Field(5, ge=1, description="deliveries of a task before it is failed")
    migrate: bool = Field(True, description="apply database migrations on start")
    client_token: SecretStr = Field(
        SecretStr(""),
        description="token clients need to create and delete (comma-separated "
        "to accept several); empty: open",
    )
    worker_token: SecretStr = Field(
        SecretStr(""),
        description="token workers need to claim and deliver (comma-separated); empty: open",
    )
    private_reads: bool = Field(False, description="reading also needs the client token")
    test_delay_before_publish: float = Field(
        0.0,
        ge=0,
        description="fault-injection tests only: seconds to wait between committing new tasks "
        "and publishing them",
        json_schema_extra={"hidden": True},
    )

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        # Only the API opens the database: a worker host need not have its driver.
        return check_database_url(value) if value else value

    def client_tokens(self) -> list[str]:
        return _tokens(self.client_token)

    def worker_tokens(self) -> list[str]:
        return _tokens(self.worker_token)


class WorkerSettings(CommonSettings):
    """Options of ``faafo-worker``."""

    ini_section: ClassVar[str] = "worker"

    endpoint_url: str = Field(
        DEFAULT_ENDPOINT_URL,
        description="API the worker delivers results to; a comma-separated list fails over "
        "in order",
    )
    name: str = Field("", description="name recorded as generated_by (default: the host name)")
    concurrency: int = Field(1, ge=1, description="tasks rendered at the same time")
    render_threads: int = Field(
        0, ge=0, description="threads per render (0: one per core, shared by all slots)"
    )
    worker_token: SecretStr = Field(SecretStr(""), description="token sent to the API")
    metrics_port: int = Field(
        0, ge=0, le=65535, description="serve Prometheus metrics on this port (0: off)"
    )
    upload_timeout: float = Field(60.0, gt=0, description="seconds to wait for one API call")
    stop_timeout: float = Field(
        60.0,
        ge=0,
        description="on SIGTERM, seconds to finish the tasks in hand before giving "
        "them back to the queue",
    )
    upload_retry_seconds: float = Field(
        120.0,
        ge=0,
        description="how long to keep retrying a result upload before giving the "
        "task back to the queue",
    )

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_url(cls, value: str) -> str:
        return check_endpoint_urls(value)


def _tokens(secret: SecretStr) -> list[str]:
    return [t.strip() for t in secret.get_secret_value().split(",") if t.strip()]


S = TypeVar("S", bound=CommonSettings)


# Sections of the INI file: options every program reads, and each program's own.
INI_SECTIONS = ("DEFAULT", "api", "worker", "client")
# DEFAULT is read as a section like the others, so each section's own options are known.
_NO_DEFAULT_SECTION = "\x00no default section"


def _parse_ini(path: Path) -> dict[str, dict[str, str]]:
    """Each section's own options (names with ``_`` for ``-``), or ConfigurationError."""
    parser = configparser.ConfigParser(interpolation=None, default_section=_NO_DEFAULT_SECTION)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not a UTF-8 text file") from None
    except configparser.Error as error:
        raise ConfigurationError(_ini_error(path, error)) from None
    return {
        name: {k.replace("-", "_"): v for k, v in parser.items(name, raw=True)}
        for name in parser.sections()
    }


def _ini_error(path: Path, error: configparser.Error) -> str:
    """One line for what configparser reports on several."""
    if isinstance(error, configparser.MissingSectionHeaderError):
        return f"{path} line {error.lineno}: no [section] header before {error.line.strip()!r}"
    if isinstance(error, configparser.ParsingError) and error.errors:
        lineno, line = error.errors[0]
        with contextlib.suppress(ValueError, SyntaxError):
            line = ast.literal_eval(line)  # some Pythons store the line's repr()
        return f"{path} line {lineno}: not 'name = value': {str(line).strip()!r}"
    if isinstance(error, configparser.DuplicateOptionError):
        where = f"{path} line {error.lineno}"
        return f"{where}: option {error.option!r} given twice in [{error.section}]"
    if isinstance(error, configparser.DuplicateSectionError):
        return f"{path} line {error.lineno}: section [{error.section}] given twice"
    return f"{path}: " + " ".join(str(error).split())


def read_ini(path: Path, section: str) -> dict[str, str]:
    """Options of ``[DEFAULT]`` overlaid with those of ``[section]``.

    A file that cannot be read or parsed raises ConfigurationError with one line.
    """
    return _overlay(_parse_ini(path), section)


def _overlay(sections: dict[str, dict[str, str]], section: str) -> dict[str, str]:
    values = dict(sections.get("DEFAULT", {}))
    if section != "DEFAULT":
        values.update(sections.get(section, {}))
    return values


def _service_classes() -> tuple[type[CommonSettings], ...]:
    return (ApiSettings, WorkerSettings)


def check_ini(
    path: Path, sections: dict[str, dict[str, str]], settings_cls: type[BaseSettings]
) -> None:
    """ConfigurationError naming the option and the file for any option no program reads.

    One file may configure a whole host, so ``[DEFAULT]`` may hold any service's
    options; the service's own section only its own. Another program's section is
    left to that program. A misspelt option is an error, not silently ignored.
    ``sections`` is ``path`` as parsed.
    """
    for name in sections:
        if name not in INI_SECTIONS:
            raise ConfigurationError(
                f"{path}: unknown section [{name}] (sections: {', '.join(INI_SECTIONS)})"
            )
    everyone = {f for cls in _service_classes() for f in cls.model_fields}
    own = getattr(settings_cls, "ini_section", "DEFAULT")
    checks = [("DEFAULT", everyone)]
    if own != "DEFAULT":
        checks.append((own, set(settings_cls.model_fields)))
    for section, known in checks:
        for key in sections.get(section, {}):
            if key in known:
                continue
            if key in everyone:
                raise ConfigurationError(
                    f"{path}: option {key!r} in [{section}] is not read by this program "
                    "(put it in [DEFAULT] or the section of the program that reads it)"
                )
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigurationError(f"{path}: unknown option {key!r} in [{section}]{hint}")


def load_settings(
    settings_cls: type[S],
    flags: dict[str, Any] | None = None,
    config_file: Path | None = None,
) -> S:
    """Build settings from flags, then ``FAAFO_*`` variables, then the INI file.

    ``config_file`` defaults to ``/etc/faafo/faafo.conf`` when that file exists.
    """
    if config_file is None and DEFAULT_CONFIG_FILE.is_file():
        config_file = DEFAULT_CONFIG_FILE
    ini: dict[str, str] = {}
    if config_file:
        sections = _parse_ini(config_file)
        check_ini(config_file, sections, settings_cls)
        ini = _overlay(sections, settings_cls.ini_section)

    class _Configured(settings_cls):  # type: ignore[valid-type, misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, _IniSource(settings_cls, ini))

    _Configured.__name__ = settings_cls.__name__
    return _Configured(**(flags or {}))


def add_settings_arguments(
    parser: argparse.ArgumentParser, settings_cls: type[BaseSettings]
) -> None:
    """One ``--flag`` per setting, documented from the field, so ``--help`` lists them all."""
    parser.add_argument(
        "--config-file",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"INI file with a [DEFAULT] section (default: {DEFAULT_CONFIG_FILE} when present)",
    )
    for name, field in settings_cls.model_fields.items():
        flag = "--" + name.replace("_", "-")
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        text = f"{field.description or name}{_shown_default(field)}; env FAAFO_{name.upper()}"
        if extra.get("hidden"):
            # Still accepted (the fault-injection tests use it), never advertised.
            text = argparse.SUPPRESS
        if field.annotation is bool:
            # A switch (--migrate / --no-migrate); env and INI still take true/false.
            parser.add_argument(
                flag,
                dest=name,
                default=argparse.SUPPRESS,
                action=argparse.BooleanOptionalAction,
                help=text,
            )
            continue
        parser.add_argument(
            flag, dest=name, default=argparse.SUPPRESS, metavar=name.upper(), help=text
        )


def _shown_default(field: FieldInfo) -> str:
    """`` (default: X)`` for --help; nothing for empty or secret defaults."""
    default = field.get_default(call_default_factory=True)
    if default in ("", None) or isinstance(default, SecretStr):
        return ""
    if isinstance(default, bool):
        default = "on" if default else "off"
    return f" (default: {default})"


def settings_from_args(settings_cls: type[S], args: argparse.Namespace) -> S:
    """Settings from parsed arguments: only the flags actually given override lower layers."""
    given = {name: getattr(args, name) for name in settings_cls.model_fields if hasattr(args, name)}
    return load_settings(settings_cls, given, getattr(args, "config_file", None))


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (not the whole usage) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def service_settings(settings_cls: type[S], args: argparse.Namespace) -> S:
    """Settings for a service's main(), with any validation error as one readable line."""
    try:
        return settings_from_args(settings_cls, args)
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first.get("loc") else ""
        where = f"--{name.replace('_', '-')}: " if name else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigurationError(f"bad configuration: {where}{message}") from None
    except (ValueError, OSError, configparser.Error) as error:
        text = " ".join(str(error).split())
        raise ConfigurationError(f"bad configuration: {text}") from None
