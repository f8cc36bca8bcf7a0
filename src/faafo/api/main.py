"""``faafo-api``: serve the API (default), or ``faafo-api migrate`` to update the schema."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from faafo import logs
from faafo.config import (
    ApiSettings,
    ConfigurationError,
    OneLineArgumentParser,
    add_settings_arguments,
    service_settings,
)
from faafo.urls import redact_url

if TYPE_CHECKING:
    from faafo.store.database import Database


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="faafo-api",
        description="The faafo API: REST API, image downloads and the web gallery.",
    )
    add_settings_arguments(parser, ApiSettings)
    parser.add_argument(
        "command",
        nargs="?",
        choices=("serve", "migrate"),
        default="serve",
        help="serve (default) or migrate the database schema and exit",
    )
    return parser


class StartupError(Exception):
    """The database cannot be opened or migrated; the message is one line."""


def _first_line(error: BaseException) -> str:
    """The driver's own message (SQLAlchemy adds SQL and a link on further lines)."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return lines[0].strip() if lines else cause.__class__.__name__


def open_database(settings: ApiSettings) -> Database:
    """The database, migrated when ``settings.migrate``; StartupError when that fails.

    Done before the server starts so that an unreachable or unusable database is one
    line and a non-zero exit, not the traceback of a failed application start-up.
    """
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from faafo.store import migrate
    from faafo.store.database import connect

    where = redact_url(settings.database_url)
    try:
        database = connect(settings.database_url)
    except (SQLAlchemyError, OSError) as error:
        raise StartupError(f"cannot open the database {where}: {_first_line(error)}") from None
    if settings.migrate:
        try:
            migrate.upgrade(database)
        except (SQLAlchemyError, CommandError, OSError) as error:
            database.dispose()
            raise StartupError(
                f"cannot migrate the database {where}: {_first_line(error)}"
            ) from None
    return database


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = service_settings(ApiSettings, args)
    except ConfigurationError as error:
        print(f"faafo-api: error: {error}", file=sys.stderr)
        return 2
    logs.setup("api", settings.log_level, settings.log_format)
    from faafo.api import auth

    auth.warn_tokens_on_command_line(args)
    try:
        auth.check_token_settings(settings)
    except ConfigurationError as error:
        print(f"faafo-api: error: {error}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        from faafo.store import migrate

        try:
            open_database(settings.model_copy(update={"migrate": True})).dispose()
        except StartupError as error:
            print(f"faafo-api: error: {error}", file=sys.stderr)
            return 1
        print(f"database at revision {migrate.head_revision()}")
        return 0

    import uvicorn

    from faafo.api.app import create_app

    try:
        database = open_database(settings)
    except StartupError as error:
        print(f"faafo-api: error: {error}", file=sys.stderr)
        return 1
    # open_database has migrated it already: the app's start-up need not again.
    app = create_app(settings.model_copy(update={"migrate": False}), database=database)
    uvicorn.run(
        app,
        host=settings.listen_address,
        port=settings.bind_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
