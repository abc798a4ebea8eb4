"""Argument parsing shared by the `scoresde` commands (cli.py and compare.py)."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def parse_options(items) -> dict:
    """`NAME=VALUE` strings to a dict; values are Python literals (numbers, True, strings)."""
    from .config import _parse_value
    options = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--option must look like NAME=VALUE, got {item!r}")
        options[name] = _parse_value(text)
    return options
