"""The README's examples run, on both stores, and say what they claim.

Every ```python block of README.md that states results (``# -> value`` after a line, or on
the line below it; ``# raises SomeError``) runs as written in a fresh store, with ``store``,
``Event`` and ``pgstreams`` defined: each claimed value is compared with what the line gives,
each claimed error must be raised. Blocks that need things the reader supplies (their own
table, a handler) state no results and are not run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

import pgstreams
from pgstreams import Event

README = Path(__file__).resolve().parent.parent / "README.md"
RESULT = re.compile(r"#\s*->\s*(?P<claim>.*)$")
RAISES = re.compile(r"#\s*raises\s+(?P<error>\w+)\s*$")


def blocks_with_results() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        block = match.group(1)
        claims = "# ->" in block or "# raises" in block
        if claims and "store." in block and "your own table" not in block:
            found.append((text[: match.start()].count("\n") + 2, block))
    return found


def claimed_value(claim: str) -> Any:
    """``5: 0-4; ...`` -> 5; ``['a', 'b']`` -> the list: the longest prefix that is a literal."""
    for end in range(len(claim), 0, -1):
        try:
            return ast.literal_eval(claim[:end].strip())
        except (ValueError, SyntaxError):
            continue
    raise AssertionError(f"no literal in the claim {claim!r}")


def checked_source(block: str) -> str:
    """The block with each claim turned into a check of the line it is about."""
    lines = block.splitlines()
    out: list[str] = []
    for line in lines:
        code, _, comment = line.partition("  #")
        comment = "#" + comment if comment else ""
        stripped = line.strip()
        if stripped.startswith("# ->") and out:
            # A claim on a line of its own is about the statement above it.
            previous = out.pop()
            claim = RESULT.search(stripped)
            assert claim is not None
            out.append(f"__check({previous.strip()}, {claimed_value(claim['claim'])!r})")
            continue
        result, raises = RESULT.search(comment), RAISES.search(comment)
        if result and _is_expression(code):
            out.append(f"__check({code.strip()}, {claimed_value(result['claim'])!r})")
        elif raises and _is_expression(code):
            out.append(f"with __raises({raises['error']}):")
            out.append(f"    {code.strip()}")
        else:
            out.append(line)
    return "\n".join(out)


def _is_expression(code: str) -> bool:
    try:
        compile(code.strip(), "<line>", "eval", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError:
        return False
    return True


def _check(actual: Any, claimed: Any) -> None:
    assert actual == claimed, f"the README says {claimed!r}, the line gives {actual!r}"


@pytest.mark.parametrize("line, block", blocks_with_results(), ids=lambda v: str(v)[:12])
async def test_a_readme_example_gives_what_it_says(store: Any, line: int, block: str) -> None:
    source = checked_source(block)
    namespace: dict[str, Any] = {
        "store": store,
        "Event": Event,
        "pgstreams": pgstreams,
        "__check": _check,
        "__raises": pytest.raises,
        **{name: getattr(pgstreams, name) for name in pgstreams.__all__},
    }
    code = compile(source, f"README.md:{line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    outcome = eval(code, namespace)
    if outcome is not None:
        await outcome


def test_the_readme_has_examples_to_run() -> None:
    assert len(blocks_with_results()) >= 6
