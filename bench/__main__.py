"""`python -m bench [NAME ...]`: run benchmarks, write bench/results/results.json + summary.md."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

BENCHMARKS = [
    "roundtrip",
    "commands",
    "relay",
    "queries",
    "freshness",
    "media",
    "hostile",
    "audit",
]
RESULTS = Path(__file__).resolve().parent / "results"


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _markdown(report: dict[str, Any]) -> str:
    lines = [f"# iconmarket benchmarks ({report['machine']['when']})", ""]
    lines.append(
        f"{report['machine']['cpus']} cores, Python {report['machine']['python']}. "
        "Medians and tails of repeated runs; the machine is noisy, compare ratios."
    )
    for bench in report["benchmarks"]:
        lines += ["", f"## {bench['name']} ({bench['unit']})", ""]
        rows = bench["results"]
        columns = list(dict.fromkeys(column for values in rows.values() for column in values))
        lines.append("| case | " + " | ".join(columns) + " |")
        lines.append("| --- | " + " | ".join("---" for _ in columns) + " |")
        for case, values in rows.items():
            cells = [str(values.get(column, "")) for column in columns]
            lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _kept(running: list[str]) -> list[dict[str, Any]]:
    """Earlier results of the benchmarks not run now, so a partial run updates the report."""
    path = RESULTS / "results.json"
    if not path.exists():
        return []
    earlier: list[dict[str, Any]] = json.loads(path.read_text()).get("benchmarks", [])
    return [b for b in earlier if b.get("module") in BENCHMARKS and b["module"] not in running]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {BENCHMARKS}")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {BENCHMARKS}")
    names = args.names or BENCHMARKS
    report: dict[str, Any] = {"machine": _machine(), "benchmarks": _kept(names)}
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr)
        module = importlib.import_module(f"bench.{name}")
        report["benchmarks"].append({"module": name, **module.run()})
    report["benchmarks"].sort(key=lambda bench: BENCHMARKS.index(bench["module"]))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "summary.md").write_text(_markdown(report))
    print(_markdown(report))
    print(f"wrote {RESULTS / 'results.json'} and {RESULTS / 'summary.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
