"""The one error type ``faafo deploy`` reports as a single line and a non-zero exit."""

from __future__ import annotations


class DeployError(Exception):
    """Something the user must fix (a missing image, flavor, network, key file or quota).

    Kept apart from openstacksdk's exceptions so the CLI can print one clear line
    instead of a traceback, and so that tests can tell a user error from a bug.
    """
