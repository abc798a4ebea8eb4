"""Argument parsing shared by the `scoresde` commands (cli.py and compare.py)."""
from __future__ import annotations

import argparse


def positive_int(text: str, minimum: int = 1) -> int:
    """argparse type: an integer >= minimum (1)."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return positive_int(text, minimum=0)


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


def parse_labels(text: str | None, num_classes: int) -> list[int] | None:
    """--labels: None, 'all' (every class), or comma-separated classes, e.g. '3' or '0,1,7'."""
    if text is None:
        return None
    if num_classes < 1:
        raise ValueError("--labels given, but the run is unconditional (config.model.num_classes = 0); give "
                         "--classifier WORKDIR for classifier guidance, or train with config.model.num_classes > 0")
    if text.strip() == "all":
        return list(range(num_classes))
    labels = []
    for part in text.split(","):
        try:
            labels.append(int(part.strip()))
        except ValueError:
            raise ValueError(f"--labels must be 'all' or comma-separated classes in 0..{num_classes - 1}, "
                             f"got {text!r}") from None
        if not 0 <= labels[-1] < num_classes:
            raise ValueError(f"--labels must be classes in 0..{num_classes - 1}, got {labels[-1]}")
    return labels


def parse_floats(text: str, flag: str) -> list[float]:
    """Comma-separated finite numbers, e.g. --guidance 0,1,3."""
    import math
    values = []
    for part in text.split(","):
        try:
            values.append(float(part.strip()))
        except ValueError:
            raise ValueError(f"{flag} must be comma-separated numbers, got {text!r}") from None
        if not math.isfinite(values[-1]):
            raise ValueError(f"{flag} must be finite numbers, got {text!r}")
    return values


def checkpoint_arg(text: str | None):
    """--checkpoint: None, a training step (digits) or a path."""
    return None if text is None else int(text) if text.isdigit() else text
