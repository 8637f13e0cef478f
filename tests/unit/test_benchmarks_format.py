"""benchmarks/run.py's figure formatting for the README table: rounded numbers, units in names."""

from __future__ import annotations

import pytest

from benchmarks import run


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.14912200003891485, "0.149"),
        (38.98, "39.0"),
        (1.7033550002452102, "1.70"),
        (0.005247999979474116, "0.00525"),
        (123.7, "124"),
        (12345.6, "12300"),
        (9.996, "10.0"),
        (-0.14912, "-0.149"),
    ],
)
def test_significant_rounds_to_three_figures_without_exponents(value: float, text: str) -> None:
    assert run.significant(value) == text


def test_format_value_rounds_numbers_and_keeps_counts() -> None:
    # Given figures as benchmarks report them: floats, counts, numeric strings
    # Then floats get 3 significant figures and counts stay whole
    assert run.format_value("rows_1_median_ms", 0.14912200003891485) == "0.149"
    assert run.format_value("cpus", 2.0) == "2"
    assert run.format_value("rules", 78) == "78"
    assert run.format_value("rows_1_median_ms", "0.1580") == "0.158"


def test_format_value_gives_load_averages_two_decimals() -> None:
    assert run.format_value("load average at start", 0.93310546875) == "0.93"
    assert run.format_value("load_avg_1m_after", 1.0) == "1.00"
    assert run.format_value("load average before", "(0.953125, 1.3, 2.45654296875)  cpus: 2") == (
        "(0.95, 1.3, 2.46)  cpus: 2"
    )


def test_format_value_rounds_only_overprecise_decimals_inside_text() -> None:
    # Given text with precise, already-rounded, integer and dotted (not decimal) numbers
    text = "162.0 MB, 131072 rows, built in 0.58 s; runs 10.38, 8.06; [0.07967300000000005]; py3.14, 1.32.0"
    # Then only the decimals written with more than 3 significant figures change
    assert (
        run.format_value("current", text)
        == "162 MB, 131072 rows, built in 0.58 s; runs 10.4, 8.06; [0.0797]; py3.14, 1.32.0"
    )


def test_figure_name_reads_snake_case_as_words_with_the_unit_last() -> None:
    assert run.figure_name("rows_100_p99_ms") == "rows 100 p99 ms"
    assert run.figure_name("read csv + validate M rows/s") == "read csv + validate M rows/s"


def test_render_writes_rounded_figures_with_their_units() -> None:
    # Given a results file with raw float figures
    results = {
        "finished": "2026-11-26 12:00 UTC",
        "machine": {**run.machine(), "load_average": [0.97021484375, 1.0, 1.0]},
        "benchmarks": [{"name": "predict", "status": "ok", "figures": {"rows_1_median_ms": 0.14912200003891485}}],
        "packaging": {"layer data (arm64, py3.14)": "175.8 MB unzipped"},
    }
    # When rendered
    table = run.render(results)
    # Then the table carries the rounded figures
    assert "| predict | rows 1 median ms | 0.149 |" in table
    assert "| packaging | layer data (arm64, py3.14) | 176 MB unzipped |" in table
    assert "load average 0.97 when done" in table
