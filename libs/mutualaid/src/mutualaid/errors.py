"""The one exception pure domain code raises: a rule says no, with a reason code."""

from __future__ import annotations


class Rejected(Exception):
    """A command the domain refuses: becomes ``<service>.CommandRejected``."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code
        self.message = message
