"""The Rust-to-asyncio bridge (``rust/src/py/bridge.rs``), without a database: a panic in the
Rust core reaches the awaiting task as ``InternalError`` instead of leaving it pending
forever, on any event loop and under load, and the interpreter still exits cleanly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading

import pytest

import pgstreams
from pgstreams import EventStreamingError, InternalError, _core

# Generous: only there so that a call that never resolves fails the test instead of hanging.
NEVER = 20.0


def assert_internal_error(error: BaseException | None, place: str) -> None:
    assert isinstance(error, InternalError), f"{place}: expected InternalError, got {error!r}"
    assert isinstance(error, EventStreamingError)
    assert isinstance(error, RuntimeError)
    assert "panicked" in str(error), str(error)


@pytest.mark.parametrize("place", ["task", "result"])
async def test_a_panic_reaches_the_caller_as_internal_error(place: str) -> None:
    with pytest.raises(InternalError) as caught:
        await asyncio.wait_for(_core._panicking_call(place), NEVER)
    assert_internal_error(caught.value, place)
    # The public name is the same class, so `except pgstreams.InternalError` catches it.
    assert pgstreams.InternalError is InternalError


async def test_many_panicking_calls_at_once_all_raise_and_the_runtime_survives() -> None:
    places = ["task", "result"] * 250
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(_core._panicking_call(p) for p in places), return_exceptions=True),
        NEVER,
    )
    assert len(outcomes) == len(places)
    for place, outcome in zip(places, outcomes, strict=True):
        assert_internal_error(outcome, place)
    # The runtime's threads survived all those panics: later calls still get their answer.
    for place in ("task", "result"):
        with pytest.raises(InternalError):
            await asyncio.wait_for(_core._panicking_call(place), NEVER)


@pytest.mark.parametrize("place", ["task", "result"])
def test_a_panic_reaches_a_blocked_caller_as_internal_error(place: str) -> None:
    """The same for the calls that block their thread (``Core.blocking()``)."""
    with pytest.raises(InternalError) as caught:
        _core._panicking_blocking_call(place)
    assert_internal_error(caught.value, place)


def test_blocked_callers_in_many_threads_each_get_their_panic() -> None:
    failures: list[str] = []

    def calls(number: int) -> None:
        for i in range(50):
            place = ("task", "result")[i % 2]
            try:
                _core._panicking_blocking_call(place)
                failures.append(f"thread {number}: no error")
            except InternalError:
                pass
            except BaseException as error:
                failures.append(f"thread {number}: {error!r}")

    threads = [threading.Thread(target=calls, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(NEVER)
        assert not thread.is_alive(), "a blocked caller never got its answer"
    assert failures == []


def test_calls_from_several_event_loops_resolve_on_their_own_loop() -> None:
    """Each result goes to the loop that made the call, also with loops in other threads."""
    failures: list[str] = []

    async def calls(number: int) -> None:
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                *(_core._panicking_call(("task", "result")[i % 2]) for i in range(50)),
                return_exceptions=True,
            ),
            NEVER,
        )
        for outcome in outcomes:
            if not isinstance(outcome, InternalError):
                failures.append(f"loop {number}: {outcome!r}")

    def run(number: int) -> None:
        try:
            asyncio.run(calls(number))
        except BaseException as error:
            failures.append(f"loop {number}: {error!r}")

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(NEVER + 10)
        assert not thread.is_alive(), "a loop never got the results of its calls"
    assert failures == []


EXIT_SCRIPT = textwrap.dedent(
    """
    import asyncio
    import pgstreams
    from pgstreams import _core

    async def main():
        for place in ("task", "result", "task", "result"):
            try:
                await _core._panicking_call(place)
            except pgstreams.InternalError:
                pass
            else:
                raise SystemExit(f"{place}: no InternalError")
        many = await asyncio.gather(
            *(_core._panicking_call(("task", "result")[i % 2]) for i in range(100)),
            return_exceptions=True,
        )
        assert all(isinstance(e, pgstreams.InternalError) for e in many), many
        # Calls still in flight when the loop and then the interpreter go away: their
        # completions must not touch a finalizing interpreter.
        for i in range(100):
            _core._panicking_call(("task", "result")[i % 2])
        print("done", flush=True)

    asyncio.run(main())
    """
)


def test_the_process_exits_cleanly_after_panicking_calls() -> None:
    # The crash this guards against (a completion racing interpreter shutdown) happened
    # in about one run in three, so run the script several times.
    for run in range(6):
        result = subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT],
            capture_output=True,
            text=True,
            timeout=60,
        )
        details = (
            f"run {run}: rc={result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        assert result.returncode == 0, details
        assert "done" in result.stdout, details
        assert "Fatal Python error" not in result.stderr, details
        assert "PyGILState" not in result.stderr, details
