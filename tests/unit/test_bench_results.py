"""`python -m bench --only X` replaces X's rows in results.json and keeps every other figure's."""

from __future__ import annotations

import json
from pathlib import Path

from bench.__main__ import _merged


def test_a_partial_run_replaces_its_rows_and_keeps_the_others(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    output.write_text(
        json.dumps(
            {
                "machine": {"cpu": "old"},
                "seconds_by_figure": {"cold_start": 28.7, "cost": 865.8},
                "figures": [{"key": "cold_start", "value": 2.1}, {"key": "cost_batch", "value": 4.49}],
            }
        )
    )
    run = {
        "machine": {"cpu": "new"},
        "seconds_by_figure": {"cost": 701.5},
        "figures": [{"key": "cost_batch", "value": 3.27}],
    }
    merged = _merged(output, run)
    assert merged["figures"] == [{"key": "cold_start", "value": 2.1}, {"key": "cost_batch", "value": 3.27}]
    assert merged["seconds_by_figure"] == {"cold_start": 28.7, "cost": 701.5}
    assert merged["machine"] == {"cpu": "new"}


def test_without_a_readable_file_the_run_is_the_result(tmp_path: Path) -> None:
    run = {"seconds_by_figure": {}, "figures": [{"key": "x", "value": 1}]}
    assert _merged(tmp_path / "missing.json", run) == run
    (tmp_path / "bad.json").write_text("{not json")
    assert _merged(tmp_path / "bad.json", run) == run
