"""benchmarks/run, the regression guard of issue 14 (seed T2-15): a ratio fails the build only
when it is more than 20% above the committed one in every one of three measurements; the
committed ratios are medians of runs; the README's table is rewritten from a run, each line with
its command. The benchmarks themselves are
stood in for by rows (they take minutes and are run by CI's own step)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    loader = importlib.machinery.SourceFileLoader("benchmarks_run", str(BENCHMARKS / "run"))
    spec = importlib.util.spec_from_loader("benchmarks_run", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    monkeypatch.setattr(module, "BASELINE", tmp_path / "baseline.json")
    monkeypatch.setattr(module, "README", tmp_path / "README.md")
    monkeypatch.setattr(module, "ROOT", tmp_path)
    return module


def row(guard: ModuleType, key: str, ratio: float) -> object:
    return guard.Row(key, f"{key} | what", ratio, 2.0, f"{ratio:.2f}x", "<= 2x",
                     "10 ms vs 5 ms", f"benchmarks/bench_{key}.py")


def run(guard: ModuleType, monkeypatch: pytest.MonkeyPatch, measured: list[dict[str, float]],
        *argv: str) -> tuple[int, int]:
    """main() with each call of measure() answering the next of ``measured``; returns its exit
    code and how many measurements it took."""
    calls = iter(measured)
    taken = [0]

    def measure(module: str, profile: object, python: str) -> list[object]:
        taken[0] += 1
        return [row(guard, key, ratio) for key, ratio in next(calls).items()]

    monkeypatch.setattr(guard, "measure", measure)
    monkeypatch.setattr(guard, "MODULES", ("bench_one",))
    monkeypatch.setattr(sys, "argv", ["benchmarks/run", "--quick", *argv])
    return guard.main(), taken[0]


def commit(guard: ModuleType, ratios: dict[str, float]) -> None:
    guard.BASELINE.write_text(json.dumps({"quick": {"ratios": ratios}}))


def test_a_ratio_within_20_percent_of_the_committed_one_passes(guard, monkeypatch) -> None:
    commit(guard, {"a": 1.0, "b": 2.0})
    assert run(guard, monkeypatch, [{"a": 1.19, "b": 1.5, "new": 9.0}], "--check") == (0, 1)


def test_a_regression_is_measured_again_and_fails_only_when_it_stays(guard, monkeypatch,
                                                                       capsys) -> None:
    commit(guard, {"a": 1.0, "b": 2.0})
    # Above once, then back within bounds: one noisy minute does not fail the build.
    assert run(guard, monkeypatch, [{"a": 1.3, "b": 2.0}, {"a": 1.1, "b": 2.0}],
               "--check") == (0, 2)
    # Above twice, then within bounds once: still no failure.
    assert run(guard, monkeypatch, [{"a": 1.3, "b": 2.0}, {"a": 1.25, "b": 2.0},
                                    {"a": 1.0, "b": 2.0}], "--check") == (0, 3)
    # A ratio above only on a measurement taken for another one passes.
    assert run(guard, monkeypatch, [{"a": 1.3, "b": 2.0}, {"a": 1.1, "b": 2.5}],
               "--check") == (0, 2)
    capsys.readouterr()
    # Above in all three: the build fails and says which ratio, by how much, against what.
    assert run(guard, monkeypatch, [{"a": 1.3, "b": 2.0}, {"a": 1.25, "b": 2.0},
                                    {"a": 1.4, "b": 2.0}], "--check") == (1, 3)
    err = capsys.readouterr().err
    assert "REGRESSION a: ratio 1.4 > 1.20 x committed 1" in err and "REGRESSION b" not in err
    # Without --check nothing fails and nothing is measured twice.
    assert run(guard, monkeypatch, [{"a": 5.0, "b": 9.0}]) == (0, 1)


def test_the_committed_ratios_are_medians_of_runs(guard, monkeypatch) -> None:
    assert run(guard, monkeypatch, [{"a": 1.0, "b": 3.0}, {"a": 3.0, "b": 1.0},
                                    {"a": 2.0, "b": 2.5}], "--runs", "3",
               "--update-baseline") == (0, 3)
    stored = json.loads(guard.BASELINE.read_text())["quick"]
    assert stored["ratios"] == {"a": 2.0, "b": 2.5}
    assert stored["command"] == "benchmarks/run --quick --runs 3 --update-baseline"


def test_the_baseline_and_the_readme_are_written_from_the_run(guard, monkeypatch) -> None:
    commit(guard, {"a": 1.0})
    guard.README.write_text(f"# Benchmarks\n\nintro\n\n{guard.README_BEGIN}\nold table\n"
                            f"{guard.README_END}\n\n## History\nkept\n")
    assert run(guard, monkeypatch, [{"a": 1.5, "b": 0.5}], "--update-baseline",
               "--readme") == (0, 1)

    stored = json.loads(guard.BASELINE.read_text())["quick"]
    assert stored["ratios"] == {"a": 1.5, "b": 0.5}
    assert stored["command"] == "benchmarks/run --quick --update-baseline --readme"
    text = guard.README.read_text()
    assert "old table" not in text and text.endswith(f"{guard.README_END}\n\n## History\nkept\n")
    assert "`benchmarks/run --quick --update-baseline --readme`" in text
    lines = [line for line in text.splitlines() if line.startswith("| a \\| what")]
    assert lines == ["| a \\| what | 1.50x | <= 2x | yes | 10 ms vs 5 ms | 1.5 (1) | "
                     "`benchmarks/bench_a.py --quick` |"]
    assert "| b \\| what | 0.50x | <= 2x | yes | 10 ms vs 5 ms | 0.5 | " in text


def test_a_readme_without_the_markers_is_refused_and_left_alone(guard, monkeypatch) -> None:
    guard.README.write_text("# Benchmarks\n")
    with pytest.raises(SystemExit, match="no '<!-- benchmarks/run: begin"):
        run(guard, monkeypatch, [{"a": 1.0}], "--readme")
    assert guard.README.read_text() == "# Benchmarks\n"
