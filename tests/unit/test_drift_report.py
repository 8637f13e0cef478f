from __future__ import annotations

import re
from html.parser import HTMLParser

import pyarrow as pa

from functions.logic.drift import check_drift
from functions.logic.drift_report import histogram_svg, render_html
from functions.logic.profile import build_reference_profile
from functions.models.drift import DriftConfig, Histogram
from functions.models.registry import Feature
from tests.unit.test_drift import FEATURES, NULL_FEATURES, make_null_table, make_table


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)


def test_drift_report_html_is_self_contained_with_a_histogram_per_feature() -> None:
    # Given a report with drift on one feature
    profile = build_reference_profile(make_table(5_000, 1), FEATURES)
    report = check_drift(profile, [make_table(5_000, 2, "category")], DriftConfig(), model="churn", version=4)
    # When rendered
    page = render_html(report)
    parsed = _Collector()
    parsed.feed(page)
    # Then it has one SVG per feature, the verdicts and versions, and nothing that loads from the network
    assert parsed.tags.count("svg") == len(FEATURES)
    assert "c2" in page and "drift" in page and "churn" in page
    assert not {"script", "link", "img", "iframe"} & set(parsed.tags)
    assert not re.search(r"(src|href)\s*=", page)
    assert all(not (v or "").startswith(("http:", "https:")) for k, v in parsed.attrs if k != "xmlns")


def test_drift_report_html_escapes_names() -> None:
    # Given a feature name and category carrying markup
    name = "<script>alert(1)</script>"
    table = pa.table({name: ["<b>x</b>"] * 2_000})
    profile = build_reference_profile(table, [Feature(name=name, type="string")])
    report = check_drift(profile, [table], model="m", version=1)
    page = render_html(report)
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>x" not in page


def test_drift_report_html_renders_empty_and_insufficient_windows() -> None:
    profile = build_reference_profile(make_table(2_000, 1), FEATURES)
    page = render_html(check_drift(profile, [], model="m", version=1))
    assert "no data" in page and "no captured rows" in page


def test_histogram_svg_draws_both_series() -> None:
    svg = histogram_svg(Histogram(labels=["a", "b"], reference=[0.5, 0.5], current=[1.0, 0.0]))
    assert svg.count("<rect") == 3 and svg.startswith("<svg")


def test_drift_report_html_shows_null_fraction_drift_of_a_feature_whose_distribution_was_not_tested() -> None:
    # Given a window where x1, 2% null in training, is all null
    profile = build_reference_profile(make_null_table(5_000, 1, {"x1": 0.02}), NULL_FEATURES)
    report = check_drift(profile, [make_null_table(5_000, 2, {"x1": 1.0})], model="m", version=1)
    # When rendered
    page = render_html(report)
    # Then x1's row and card show the drift, the null fractions, and why the distribution was not tested
    row = re.search(r"<tr><td>x1</td>.*?</tr>", page)
    assert row is not None and ">drift<" in row.group(0) and "null fraction only" in row.group(0)
    assert "0.02 &rarr; 1" in row.group(0)
    card = page[page.index("<h3>x1 ") :]
    card = card[: card.index('<div class="card">')]
    assert "null fraction changed" in card
    assert "not run: 0 current / 4,900 reference non-null values, minimum 1,000" in card
