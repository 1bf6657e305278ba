"""Running ``pgstreams`` as a user runs it: a subprocess, its output parsed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

# What a traceback, a progress bar or a password would leave in the output.
TRACEBACK = "Traceback (most recent call last)"
BAR_MARKS = ("\r", "%|", "it/s", "line/s", "█")


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a run: none of the caller's pgstreams variables leak in."""
    env = {**os.environ, "PGSTREAMS_DSN": "", "DATABASE_URL": "", "PGSTREAMS_SCHEMA": ""}
    return {**env, **(extra or {})}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pgstreams.cli", *args]


def run(
    *args: str,
    input: str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
        cwd=cwd,
    )


def json_lines(text: str) -> list[Any]:
    """Every line of a command's stdout, parsed (each must be one JSON document)."""
    return [json.loads(line) for line in text.splitlines()]


def assert_one_clean_error_line(stderr: str, *, secret: str | None = None) -> str:
    """The error is exactly one line, ``pgstreams: ...``, with no traceback (nor the secret)."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("pgstreams: "), stderr
    assert TRACEBACK not in stderr
    if secret is not None:
        assert secret not in stderr
    return lines[0]
