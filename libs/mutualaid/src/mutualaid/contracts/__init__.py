"""Wire contracts of the platform: the CloudEvent envelope and every command and event.

Importing this package registers every message type, so ``message_class`` can resolve any
``type`` seen on the wire.
"""

from . import billing, claims, jury, membership, publicity, topics
from .base import Command, Event, Message, message_class, registered_types
from .envelope import CloudEvent, decode, encode, envelope, new_id
from .rejection import REJECTED, CommandRejected, ReasonCode, rejected

__all__ = [
    "REJECTED", "CloudEvent", "Command", "CommandRejected", "Event", "Message", "ReasonCode",
    "billing", "claims", "decode", "encode", "envelope", "jury", "membership", "message_class",
    "new_id", "publicity", "registered_types", "rejected", "topics",
]
