"""The exceptions handlers raise on purpose: a rule says no (``Rejected``), or a message
arrived before what it refers to and must wait (``RetryLater``)."""

from __future__ import annotations


class Rejected(Exception):
    """A command the domain refuses: becomes ``<service>.CommandRejected``."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code
        self.message = message


class RetryLater(Exception):
    """The message refers to state another transaction is about to commit (e.g. a payment
    result for a debit whose shard is still being stored): the consumed batch is rolled
    back and redelivered, like a lost database connection, instead of being refused."""
