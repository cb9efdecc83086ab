"""The operator's command line, ``mutualaid`` (also ``python -m mutualaid.cli``): send
commands, run and reconcile sharing days, read a case's history, read and replay dead
letters, watch topics. ``python -m mutualaid.cli.docs`` writes the contract docs."""

from __future__ import annotations

from .main import build_parser, main

__all__ = ["build_parser", "main"]
