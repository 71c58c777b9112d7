"""Overlapped stages (sadtalker/stages.py) on synthetic stages: serial sum vs overlapped wall time.

    python bench/stages.py [--batches 40] [--render-ms 30] [--post-ms 20] [--enhance-ms 25] [--encode-ms 10]

Each stage waits its cost per batch without holding the GIL (as a GPU kernel, a numpy/OpenCV call or a pipe
write to ffmpeg does), so the figures show what the stage machinery itself achieves: the wall time of the
overlapped run approaches the slowest stage's total, not the serial sum.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sadtalker.stages import Stages  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40)
    for name, ms in (("render", 30), ("post", 20), ("enhance", 25), ("encode", 10)):
        parser.add_argument(f"--{name}-ms", type=float, default=ms)
    args = parser.parse_args()
    cost = {"render": args.render_ms, "post": args.post_ms, "enhance": args.enhance_ms, "encode": args.encode_ms}

    def work(name: str) -> None:
        time.sleep(cost[name] / 1000)

    def source():
        for i in range(args.batches):
            work("render")
            yield [i, i]

    def transform(name: str):
        def run(batches):
            for batch in batches:
                work(name)
                yield batch
        return run

    with Stages("render", source, [("post", transform("post")), ("enhance", transform("enhance"))]) as stages:
        stages.drain("encode", lambda batch: work("encode"))
    serial = sum(cost.values()) * args.batches / 1000
    slowest = max(cost.values()) * args.batches / 1000
    print(f"{'stage':<10}{'busy s':>9}{'busy %':>8}")
    for name, row in stages.report().items():
        print(f"{name:<10}{row['seconds']:>9.2f}{100 * row['busy_share']:>8.0f}")
    print(f"serial sum {serial:.2f} s, slowest stage {slowest:.2f} s, overlapped wall {stages.wall_s:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
