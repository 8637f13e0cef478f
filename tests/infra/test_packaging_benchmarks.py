"""benchmarks/run.py: running benchmark scripts, reading their figures, the table, the README."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import run


@pytest.fixture
def bench_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(run, "BENCHMARKS", tmp_path)
    return tmp_path


def test_parse_figures_reads_figure_lines_and_json_objects() -> None:
    stdout = 'generating...\nrows/second: 5.1 M\n{"peak_mb": 80, "nested": {"x": 1}}\nno colon here\n'
    assert run.parse_figures(stdout) == {"rows/second": "5.1 M", "peak_mb": 80}


def test_parse_figures_reads_an_aligned_table_and_skips_log_records() -> None:
    stdout = (
        '{"level":"INFO","message":"model loaded","ms":25.6}\n'
        "inference benchmark: median of 3 runs\n"
        "figure                 value  target\n"
        "rows_1_median_ms      0.1580  <= 1.0  ok\n"
        "cpus                  2.0000  \n"
        "\n"
        "after the table  not a figure\n"
    )
    assert run.parse_figures(stdout) == {
        "inference benchmark": "median of 3 runs",
        "rows_1_median_ms": "0.1580 <= 1.0 ok",
        "cpus": "2.0000",
    }


def test_run_benchmark_reports_a_missing_script_as_missing(bench_dir: Path) -> None:
    result = run.run_benchmark("predict", timeout=30)
    assert result["status"] == "missing"
    assert result["figures"] == {}


def test_run_benchmark_reads_printed_figures_in_a_fresh_process(bench_dir: Path) -> None:
    # Given a benchmark that prints figures
    (bench_dir / "demo.py").write_text("import os\nprint('rows/second: 12')\nprint('pid:', os.getpid())\n")
    # When run
    result = run.run_benchmark("demo", timeout=60)
    # Then its figures are read from stdout, in a process other than ours
    assert result["status"] == "ok"
    assert result["figures"]["rows/second"] == "12"
    assert result["figures"]["pid"] != str(__import__("os").getpid())


def test_run_benchmark_prefers_the_figures_file_and_reports_failures(bench_dir: Path) -> None:
    (bench_dir / "filed.py").write_text(
        "import json, os\nprint('noise: 1')\njson.dump({'p99_ms': 4.2}, open(os.environ['STEPWISE_BENCH_JSON'], 'w'))\n"
    )
    (bench_dir / "broken.py").write_text("raise SystemExit('no model')\n")
    assert run.run_benchmark("filed", timeout=60)["figures"] == {"p99_ms": 4.2}
    broken = run.run_benchmark("broken", timeout=60)
    assert broken["status"] == "failed (exit 1)"
    assert "no model" in broken["stderr"]


def results() -> dict:
    return {
        "finished": "2026-11-26 12:00 UTC",
        "machine": run.machine(),
        "benchmarks": [
            {"name": "validate", "status": "ok", "figures": {"rows/second": "5.2 M | one core"}},
            {"name": "predict", "status": "missing", "figures": {}},
        ],
        "packaging": {"layer inference (arm64, py3.14)": "124.1 MB unzipped"},
    }


def test_render_writes_the_machine_and_one_row_per_figure() -> None:
    table = run.render(results())
    assert "Python" in table and "cores" in table
    assert "| validate | rows/second | 5.2 M \\| one core |" in table
    assert "| predict | status | missing |" in table
    assert "| packaging | layer inference (arm64, py3.14) | 124 MB unzipped |" in table


def test_update_readme_replaces_only_the_text_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# X\n## Performance\n{run.START}\nold table\n{run.END}\nafter\n")
    run.update_readme("| new |\n", readme)
    assert readme.read_text() == f"# X\n## Performance\n{run.START}\n| new |\n{run.END}\nafter\n"


def test_update_readme_without_markers_says_what_to_add(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# X\n")
    with pytest.raises(SystemExit, match="perf:start"):
        run.update_readme("| new |\n", readme)


def test_main_renders_an_earlier_results_file_without_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "latest.json"
    source.write_text(json.dumps(results()))
    assert run.main(["--from", str(source)]) == 0
    assert "| validate | rows/second |" in capsys.readouterr().out
