"""``faafo-api``: serve the API (default), or ``faafo-api migrate`` to update the schema."""

from __future__ import annotations

import argparse
import sys

from faafo import logs
from faafo.config import (
    ApiSettings,
    ConfigurationError,
    OneLineArgumentParser,
    add_settings_arguments,
    service_settings,
)


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = service_settings(ApiSettings, args)
    except ConfigurationError as error:
        print(f"faafo-api: error: {error}", file=sys.stderr)
        return 2
    logs.setup("api", settings.log_level, settings.log_format)
    if args.command == "migrate":
        from faafo.store import migrate
        from faafo.store.database import connect

        migrate.upgrade(connect(settings.database_url))
        print(f"database at revision {migrate.head_revision()}")
        return 0

    import uvicorn

    from faafo.api.app import create_app

    app = create_app(settings)
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
