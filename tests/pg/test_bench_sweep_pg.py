"""``pgstreams bench --sweep`` at its smallest sizes, as a subprocess: the table, the JSON,
the picture and a recommendation made of values it measured."""

from __future__ import annotations

import json
from pathlib import Path

from cli.helpers import run


def test_the_sweep_measures_each_knob_and_recommends_the_fastest(
    pg_dsn: str, tmp_path: Path
) -> None:
    results, picture = tmp_path / "sweep.json", tmp_path / "sweep.png"
    done = run(
        "bench", "--sweep", "--quick", "--dsn", pg_dsn,
        "--json", str(results), "--plot", str(picture),
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(results.read_text())
    knobs = {point["knob"] for point in report["points"]}
    assert knobs == {"append batch size", "read_batch_size", "dequeue batch size", "max_pool_size"}
    assert all(point["rate"] > 0 for point in report["points"])
    best = report["recommendation"]
    for knob, key in (("read_batch_size", "read_batch_size"), ("max_pool_size", "max_pool_size")):
        measured = [p for p in report["points"] if p["knob"] == knob]
        assert best[key] == max(measured, key=lambda p: p["rate"])["value"]
    assert f"read_batch_size={best['read_batch_size']}" in done.stdout
    assert f"Maximum Pool Size={best['max_pool_size']}" in done.stdout
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "..." not in done.stderr  # progress only on a terminal
