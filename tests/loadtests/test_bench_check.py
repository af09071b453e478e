"""``make bench``'s result file and ``--check``: one entry per CPU; side-by-side figures are
judged, absolute timings are not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.side_by_side import (
    Figure,
    Results,
    check,
    entry_for,
    load_entries,
    merged,
    verdict,
    with_entry,
    write_report,
)

STATED = {
    "engine.e2e_ratio": {"median": 1.0, "spread": [0.98, 1.03]},
    "engine.e2e_direct": {"median": 4.0, "spread": [3.7, 4.4]},
    "swap.failed": {"median": 0, "spread": [0, 0]},
}


def _results(ratio: float, direct: float, failed: float) -> Results:
    results = Results()
    for key, unit, value in (("engine.e2e_ratio", "x", ratio), ("engine.e2e_direct", "s", direct),
                             ("swap.failed", "requests", failed)):
        results.figures[key] = Figure(key, key, unit, [value, value])
    return results


def test_absolute_drift_is_printed_not_judged(capsys: pytest.CaptureFixture[str]) -> None:
    assert check(_results(1.01, 5.2, 0), STATED) == 0
    out = capsys.readouterr().out
    assert "2 of 2 side-by-side figures agree" in out
    assert "1.30x documented" in out
    assert "this machine ran at 0.77x the documented speed" in out
    assert "far from the documented machine" not in out


def test_a_machine_far_from_the_documented_speed_is_said(
        capsys: pytest.CaptureFixture[str]) -> None:
    results = _results(1.0, 16.0, 0)
    results.figures["fake.direct_rps"] = Figure("fake.direct_rps", "direct", "req/s",
                                                [2000, 2000])
    stated = {**STATED, "fake.direct_rps": {"median": 8000, "spread": [7000, 9000]}}
    assert check(results, stated) == 0
    out = capsys.readouterr().out
    assert "this machine ran at 0.25x the documented speed" in out
    assert "far from the documented machine" in out


@pytest.mark.parametrize(("ratio", "failed"), [(1.10, 0), (1.0, 1)])
def test_a_ratio_or_a_count_outside_its_spread_fails(ratio: float, failed: float,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert check(_results(ratio, 4.0, failed), STATED) == 1
    assert "OUTSIDE" in capsys.readouterr().out


def _entry(cpu: str, runs: list[float], seconds: int = 600) -> dict[str, Any]:
    figure = Figure("engine.e2e_ratio", "end-to-end ratio", "x", runs, "<= 1.02")
    return {"cpu": cpu, "machine": f"{cpu}, 2 cores", "date": "2026-12-02",
            "command": "make bench", "invocations": 1, "seconds": seconds,
            "figures": {figure.key: {"label": figure.label, "unit": figure.unit, "runs": runs,
                                     "median": figure.median, "spread": list(figure.spread),
                                     "target": figure.target}}}


def test_a_run_replaces_its_own_cpus_figures_and_keeps_the_others() -> None:
    entries = [_entry("Intel Xeon", [1.0, 1.01]), _entry("AMD EPYC", [0.9, 0.95])]
    updated = with_entry(entries, _entry("Intel Xeon", [1.1, 1.2]))
    assert [e["cpu"] for e in updated] == ["Intel Xeon", "AMD EPYC"]
    assert updated[0]["figures"]["engine.e2e_ratio"]["runs"] == [1.1, 1.2]
    assert updated[1] == entries[1]
    assert [e["cpu"] for e in with_entry(entries, _entry("Arm", [1.0, 1.0]))] == \
        ["Intel Xeon", "AMD EPYC", "Arm"]


def test_merge_adds_an_invocations_runs_to_the_spread() -> None:
    both = merged(_entry("AMD EPYC", [1.0, 1.01], 600), _entry("AMD EPYC", [1.05, 0.97], 800))
    figure = both["figures"]["engine.e2e_ratio"]
    assert figure["runs"] == [1.0, 1.01, 1.05, 0.97]
    assert figure["spread"] == [0.97, 1.05]
    assert figure["median"] == pytest.approx(1.005)
    assert (both["invocations"], both["seconds"]) == (2, 700)


def test_check_reads_the_figures_of_the_cpu_it_runs_on(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps({"machines": [_entry("Intel Xeon", [1.0, 1.01]),
                                             _entry("AMD EPYC", [0.9, 0.95])]}))
    entries = load_entries(path)
    assert entry_for(entries, "AMD EPYC", path)["figures"]["engine.e2e_ratio"]["runs"] == \
        [0.9, 0.95]
    with pytest.raises(SystemExit, match=r"no figures measured on this CPU \(Arm\).*"
                                         r"Intel Xeon; AMD EPYC.*make bench"):
        entry_for(entries, "Arm", path)


def test_a_file_from_before_machines_is_one_entry(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.json"
    old = _entry("x", [1.0, 1.0])
    del old["cpu"]
    old["machine"] = "Intel(R) Xeon(R) Processor, 2 cores, 24 GiB memory"
    path.write_text(json.dumps(old))
    assert [e["cpu"] for e in load_entries(path)] == ["Intel(R) Xeon(R) Processor"]


@pytest.mark.parametrize("text", ["not json", "[]", '{"machines": [{"cpu": "x"}]}',
                                  '{"figures": [], "machine": "x"}'])
def test_a_file_that_is_not_a_result_file_is_said_so(tmp_path: Path, text: str) -> None:
    path = tmp_path / "benchmarks.json"
    path.write_text(text)
    with pytest.raises(SystemExit, match="not a benchmark result file"):
        load_entries(path)


def test_the_report_puts_machines_side_by_side(tmp_path: Path) -> None:
    write_report([_entry("Intel(R) Xeon(R) Processor", [1.0, 1.01]),
                  _entry("AMD EPYC", [0.9, 0.95])], docs=tmp_path)
    text = (tmp_path / "benchmarks.md").read_text()
    assert "| figure | Intel Xeon Processor | spread | AMD EPYC | spread | target | judged |" \
        in text
    assert "| end-to-end ratio | 1 x | 1 to 1.01 | 0.925 x | 0.9 to 0.95 | <= 1.02 | yes |" \
        in text
    assert (tmp_path / "benchmarks.png").read_bytes()[:4] == b"\x89PNG"
    assert len(load_entries(tmp_path / "benchmarks.json")) == 2


DOCUMENTED = [1.05, 1.12, 1.17, 1.28, 1.33, 1.52]


def _ratio(*runs: float) -> Figure:
    return Figure("structured.ff_ratio", "deviating / constrained", "x", list(runs))


def test_a_median_beyond_the_spread_with_runs_inside_it_agrees() -> None:
    assert verdict(_ratio(1.2, 1.3, 1.1), DOCUMENTED) == (True, "")
    agrees, why = verdict(_ratio(1.03, 1.39, 1.04), DOCUMENTED)
    assert agrees
    assert "1 of 3 runs inside" in why


def test_every_run_beyond_one_end_disagrees_with_the_chance_of_it() -> None:
    agrees, why = verdict(_ratio(1.6, 1.9, 1.7), DOCUMENTED)
    assert not agrees
    assert "all 3 runs above the documented 6 (by chance 1 in 84" in why
    assert not verdict(_ratio(0.9, 1.0, 1.01), DOCUMENTED)[0]


def test_one_failed_request_in_any_run_disagrees() -> None:
    failed = Figure("swap.failed", "failed requests", "requests", [0, 1, 0])
    assert failed.median == 0
    assert verdict(failed, [0, 0, 0, 0, 0, 0]) == (False, "1 of 3 runs outside")
    assert verdict(Figure("swap.failed", "f", "requests", [0, 0, 0]), [0] * 6) == (True, "")
