"""Subcommands of the `radstation` CLI; each module exposes `register(subparsers)`.

A module's `register` adds its parser and sets `func` (called with the parsed args, returns an exit code).
"""
