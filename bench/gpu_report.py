"""The JSON files bench/gpu.sh collects -> the markdown table in docs/performance.md (between the markers).

    python bench/gpu_report.py RESULTS_DIR [--doc docs/performance.md]

Each `*.json` in RESULTS_DIR is one `bench/pipeline.py --json` run (its file name is the row label) or the
`bench.precision --json` output (precision.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

START, END = "<!-- gpu-bench:start -->", "<!-- gpu-bench:end -->"


def pipeline_rows(runs: dict[str, dict]) -> list[str]:
    lines = ["| run | device | precision | batch | frames | wall s | fps | render fps | enhance fps | peak MB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, r in runs.items():
        stages = r["stages"]
        render = stages.get("render", {}).get("fps", 0.0)
        enhance = stages.get("enhance", {})
        enhance_fps = f"{enhance['fps']:.1f}" + ("" if enhance.get("ran") else " (did not run)") if enhance else "-"
        lines.append(f"| {label} | {r['device']} | {r['precision']} | {r.get('batch_size', '')} | {r['frames']} | "
                     f"{r['wall_s']:.2f} | {r['frames'] / r['wall_s']:.1f} | {render:.1f} | {enhance_fps} | "
                     f"{r.get('peak_memory_mb', 0):.0f} |")
    return lines


def precision_rows(report: dict) -> list[str]:
    lines = ["| network | mode | vs | max | mean | % > 1 level | PSNR dB | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["rows"]:
        if "unavailable" in r:
            lines.append(f"| {r['network']} | {r['mode']} | | | | | | unavailable: {r['unavailable']} |")
            continue
        note = f"labels differ {r['labels_differ_pct']} %" if "labels_differ_pct" in r else ""
        lines.append(f"| {r['network']} | {r['mode']} | {r['against']} | {r['max_abs']} | {r['mean_abs']:.4f} | "
                     f"{r['pct_over_1']:.4f} | {r['psnr_db']} | {note} |")
    return lines


def build_table(results: Path) -> str:
    runs, lines = {}, []
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        if path.stem == "precision":
            lines += ["Precision vs fp32 on the golden inputs:", ""] + precision_rows(data) + [""]
        else:
            runs[path.stem] = data
    if runs:
        lines += ["Pipeline runs (measured):", ""] + pipeline_rows(runs)
    return "\n".join(lines)


def replace_between_markers(text: str, table: str) -> str:
    if START not in text or END not in text:
        raise ValueError(f"the document has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("--doc", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "performance.md")
    args = parser.parse_args(argv)
    table = build_table(args.results)
    args.doc.write_text(replace_between_markers(args.doc.read_text(), table))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
