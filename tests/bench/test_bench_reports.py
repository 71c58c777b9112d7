"""The pure parts of the benchmarks: image error figures (bench.precision) and the table gpu.sh writes into
docs/performance.md (bench/gpu_report.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench.gpu_report import END, START, build_table, replace_between_markers
from bench.precision import image_errors


def test_image_errors_in_levels_percent_and_psnr():
    a = np.zeros((10, 10, 3), np.uint8)
    b = a.copy()
    assert image_errors(a, b) == {"max_abs": 0, "mean_abs": 0.0, "pct_over_1": 0.0, "psnr_db": math.inf}
    b[0, 0, 0], b[0, 1, 0] = 3, 1            # one value off by 3, one by 1: 1 of 300 values is > 1 level
    errors = image_errors(b, a)
    assert errors["max_abs"] == 3 and errors["mean_abs"] == pytest.approx(4 / 300, abs=1e-4)
    assert errors["pct_over_1"] == pytest.approx(100 / 300, abs=1e-3)
    assert errors["psnr_db"] == pytest.approx(10 * math.log10(255**2 / (10 / 300)), abs=0.01)


def test_gpu_table_replaces_only_the_marked_block(tmp_path):
    run = {"device": "cuda:0", "precision": "bf16", "frames": 250, "wall_s": 2.5, "batch_size": 16,
           "peak_memory_mb": 4096, "stages": {"render": {"frames": 250, "seconds": 2.0, "fps": 125.0, "ran": True},
                                               "enhance": {"frames": 0, "seconds": 0.0, "fps": 0.0, "ran": False}}}
    (tmp_path / "render_bf16.json").write_text(json.dumps(run))
    (tmp_path / "precision.json").write_text(json.dumps({"rows": [
        {"network": "renderer", "mode": "tf32", "unavailable": "no TF32 on the CPU"}]}))
    table = build_table(tmp_path)
    assert "| render_bf16 | cuda:0 | bf16 | 16 | 250 | 2.50 | 100.0 | 125.0 | 0.0 (did not run) | 4096 |" in table
    assert "unavailable: no TF32 on the CPU" in table
    doc = f"# title\n\nkept\n{START}\nold\n{END}\nafter\n"
    assert replace_between_markers(doc, table) == f"# title\n\nkept\n{START}\n{table}\n{END}\nafter\n"
    with pytest.raises(ValueError, match="markers"):
        replace_between_markers("no markers", table)
