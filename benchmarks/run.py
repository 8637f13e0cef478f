"""Run the benchmarks and write one JSON + one Markdown table of their figures.

    python -m benchmarks.run                      # validate, drift, predict, features (those that exist)
    python -m benchmarks.run predict              # only some
    python -m benchmarks.run --update-readme      # ... and paste the table into README.md
    python -m benchmarks.run --from benchmarks/out/latest.json --update-readme   # no rerun

Each benchmark runs in its own process (see benchmarks/__init__.py for how its figures are read).
Results land in benchmarks/out/ (gitignored): results-<UTC time>.json and .md, and latest.json /
latest.md; the table is printed. --update-readme replaces what lies between the markers
`<!-- perf:start -->` and `<!-- perf:end -->` in README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
OUT = BENCHMARKS / "out"
README = ROOT / "README.md"
START, END = "<!-- perf:start -->", "<!-- perf:end -->"

SUITE = ("validate", "drift", "predict", "features")
PACKAGES = (
    "numpy",
    "pyarrow",
    "onnxruntime",
    "scikit-learn",
    "pydantic",
    "aws-lambda-powertools",
    "boto3",
    "moto",
)
_FIGURE = re.compile(r"^\s*([A-Za-z][^:]{0,80}?)\s*:\s+(\S.*?)\s*$")


# -- the machine ----------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str:
    try:
        proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_gb": _memory_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": packages,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "commit": _git_commit(),
    }


# -- running --------------------------------------------------------------------------------
def _is_log_record(data: dict[str, Any]) -> bool:
    """A structured log line (Powertools' JSON logs go to stdout), not figures."""
    return "level" in data and ("message" in data or "timestamp" in data)


def parse_figures(stdout: str) -> dict[str, Any]:
    """Figures from a benchmark's stdout, in order: `figure: value` lines; the scalar items of
    JSON-object lines (log records skipped); and the rows under a `figure  value ...` header of a
    column-aligned table (columns two or more spaces apart; a blank line ends the table)."""
    figures: dict[str, Any] = {}
    in_table = False
    for line in stdout.splitlines():
        stripped = line.strip()
        columns = re.split(r"\s{2,}", stripped)
        if not stripped:
            in_table = False
            continue
        if columns[0].lower() == "figure" and len(columns) > 1:
            in_table = True
            continue
        if stripped.startswith("{") and stripped.endswith("}"):
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError:
                data = None
            if isinstance(data, dict):
                if not _is_log_record(data):
                    figures.update({k: v for k, v in data.items() if isinstance(v, str | int | float | bool)})
                continue
        if in_table and len(columns) > 1:
            figures[columns[0]] = " ".join(columns[1:])
            continue
        match = _FIGURE.match(line)
        if match:
            figures[match.group(1)] = match.group(2)
    return figures


def run_benchmark(name: str, timeout: float) -> dict[str, Any]:
    script = BENCHMARKS / f"{name}.py"
    if not script.is_file():
        return {"name": name, "status": "missing", "figures": {}, "note": f"benchmarks/{name}.py does not exist"}
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        figures_file = Path(tmp) / "figures.json"
        env = {**os.environ, "STEPWISE_BENCH_JSON": str(figures_file), "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            return {"name": name, "status": "timeout", "seconds": timeout, "figures": parse_figures(out), "stdout": out}
        seconds = time.perf_counter() - started
        figures = parse_figures(proc.stdout)
        if figures_file.is_file():
            with contextlib.suppress(json.JSONDecodeError):
                figures = json.loads(figures_file.read_text())
    result: dict[str, Any] = {
        "name": name,
        "status": "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})",
        "seconds": round(seconds, 1),
        "figures": figures,
        "stdout": proc.stdout,
    }
    if proc.returncode != 0:
        result["stderr"] = proc.stderr[-4000:]
    return result


def layer_sizes() -> dict[str, str]:
    """Unzipped sizes of the current Lambda layer builds (already built; nothing is built here)."""
    try:
        sys.path.insert(0, str(ROOT))
        from layers.build.cache import layer_dir, manifest_path, read_manifest
        from layers.build.requirements import layer_names
    except ImportError:
        return {}
    sizes = {}
    for name in layer_names():
        out = layer_dir(name)
        if manifest_path(out).is_file():
            manifest = read_manifest(out)
            target = manifest["target"]
            sizes[f"layer {name} ({target['arch']}, py{target['python']})"] = (
                f"{manifest['size_bytes'] / 1e6:.1f} MB unzipped"
            )
    return sizes


# -- rendering ------------------------------------------------------------------------------
_DECIMAL = re.compile(r"(?<![\w.])-?\d+\.\d+(?:[eE][-+]?\d+)?(?![\w.])")
_NUMBER = re.compile(r"\s*-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\s*")
_LOAD_AVERAGE = re.compile(r"load[ _]av", re.IGNORECASE)


def significant(x: float, digits: int = 3) -> str:
    """`x` to `digits` significant figures, never in exponent notation: 0.14912 -> 0.149,
    38.98 -> 39.0, 1.7034 -> 1.70, 0.0052479 -> 0.00525, 123.7 -> 124, 12345.6 -> 12300."""
    if x == 0 or not math.isfinite(x):
        return str(x)
    decimals = digits - 1 - math.floor(math.log10(abs(x)))
    if decimals <= 0:
        return str(int(round(x, decimals)))
    rounded = f"{x:.{decimals}f}"
    if math.floor(math.log10(abs(float(rounded)))) > math.floor(math.log10(abs(x))):
        rounded = f"{x:.{decimals - 1}f}" if decimals > 1 else str(int(float(rounded)))  # 9.996 -> 10.0
    return rounded


def figure_name(name: str) -> str:
    """A figure's name for the table: snake_case names read as words, their unit last
    (rows_1_median_ms -> rows 1 median ms)."""
    return name.replace("_", " ") if " " not in name else name


def format_value(figure: str, value: Any, digits: int = 3) -> str:
    """A figure's value for the table: a number to `digits` significant figures (a load average to
    2 decimals; a whole number as it is); in text, each decimal number written more precisely than
    that is rounded the same way (none is padded)."""
    load = bool(_LOAD_AVERAGE.search(figure))
    if isinstance(value, bool | int):
        return str(value)
    if isinstance(value, float):
        if load:
            return f"{value:.2f}"
        return str(int(value)) if value.is_integer() else significant(value, digits)
    text = str(value)
    if _NUMBER.fullmatch(text):
        whole = text.strip().lstrip("-").isdigit()
        return format_value(figure, int(text) if whole else float(text), digits)

    def rounded(match: re.Match[str]) -> str:
        literal = match.group()
        mantissa = re.split(r"[eE]", literal)[0].lstrip("-")
        if load:
            return f"{float(literal):.2f}" if len(mantissa.split(".")[1]) > 2 else literal
        precise = len(mantissa.replace(".", "").lstrip("0")) > digits or mantissa != literal.lstrip("-")
        return significant(float(literal), digits) if precise else literal

    return _DECIMAL.sub(rounded, text)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    load = f", load average {m['load_average'][0]:.2f} when done" if m.get("load_average") else ""
    lines = [
        f"Measured {results['finished']} on {m['cpu']} ({m['arch']}, {m['cores']} cores, "
        f"{m['memory_gb']} GB{load}), Python {m['python']}, commit {m['commit']}; {versions}.",
        "",
        "| benchmark | figure | value |",
        "| --- | --- | --- |",
    ]
    for bench in results["benchmarks"]:
        if bench["status"] != "ok":
            lines.append(f"| {bench['name']} | status | {_cell(bench['status'])} |")
        for figure, value in bench["figures"].items():
            lines.append(f"| {bench['name']} | {_cell(figure_name(figure))} | {_cell(format_value(figure, value))} |")
    for figure, value in results.get("packaging", {}).items():
        lines.append(f"| packaging | {_cell(figure_name(figure))} | {_cell(format_value(figure, value))} |")
    lines += ["", "Reproduce: `python -m benchmarks.run` (add `--update-readme` to refresh this table)."]
    return "\n".join(lines) + "\n"


def update_readme(table: str, readme: Path = README) -> None:
    text = readme.read_text() if readme.is_file() else ""
    if START not in text or END not in text or text.index(START) > text.index(END):
        raise SystemExit(f"{readme} needs the markers {START} and {END} (in that order) around the Performance table")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: {', '.join(SUITE)})")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark (default %(default)s)")
    parser.add_argument("--from", dest="source", metavar="JSON", help="render an earlier results file; run nothing")
    parser.add_argument("--update-readme", action="store_true", help=f"paste the table between {START} and {END}")
    parser.add_argument("--out", default=str(OUT), help="output directory (default benchmarks/out)")
    parser.add_argument(
        "--merge", action="store_true", help="keep the other benchmarks' results from the output's latest.json"
    )
    args = parser.parse_args(argv)

    if args.source:
        results = json.loads(Path(args.source).read_text())
    else:
        started = datetime.now(UTC)
        benches = []
        for name in args.names or SUITE:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            benches.append(run_benchmark(name, args.timeout))
            print(f"  {name}: {benches[-1]['status']}", file=sys.stderr, flush=True)
        latest = Path(args.out) / "latest.json"
        if args.merge and latest.is_file():
            ran = {b["name"] for b in benches}
            earlier = [b for b in json.loads(latest.read_text())["benchmarks"] if b["name"] not in ran]
            benches = sorted(benches + earlier, key=lambda b: (*SUITE, b["name"]).index(b["name"]))
        results = {
            "started": started.strftime("%Y-%m-%d %H:%M UTC"),
            "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "benchmarks": benches,
            "packaging": layer_sizes(),
        }
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        table = render(results)
        for stem in (f"results-{stamp}", "latest"):
            (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
            (out / f"{stem}.md").write_text(table)
        print(f"wrote {out / f'results-{stamp}.json'} and .md", file=sys.stderr)
    table = render(results)
    print(table)
    if args.update_readme:
        update_readme(table)
        print(f"updated {README}", file=sys.stderr)
    failed = [b["name"] for b in results["benchmarks"] if b["status"] not in ("ok", "missing")]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
