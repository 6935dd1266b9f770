"""Cold-start cost of the text encoder, measured in fresh subprocesses.

    .venv/bin/python benchmarks/text_encoder_load.py [--repeats 3] [--threads 1] [--kind minilm-l6-v2]

Each repeat is a new Python process (so nothing is cached in sys.modules) that times:
import torch, import edgevid.text, loading the encoder, and encoding one prompt (first call,
then the median of 10 warm calls). It also records whether transformers/sympy got imported:
either would blow the 5-second end-to-end budget (DESIGN.md). Prints a table and a JSON line.
The OS file cache is warm after the first repeat; the first row is the coldest.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import edgevid.text as et
t2 = time.perf_counter()
enc = et.load_text_encoder(sys.argv[1])
t3 = time.perf_counter()
enc.encode(["a red circle moving right on a white background"])
t4 = time.perf_counter()
warm = []
for _ in range(10):
    s = time.perf_counter(); enc.encode(["a red circle moving right on a white background"]); warm.append(time.perf_counter() - s)
warm.sort()
print(json.dumps({
    "import_torch_s": t1 - t0, "import_edgevid_text_s": t2 - t1, "load_s": t3 - t2,
    "first_encode_s": t4 - t3, "warm_encode_s": warm[len(warm) // 2],
    "heavy_imports": [m for m in ("transformers", "sentence_transformers", "sympy") if m in sys.modules],
}))
"""

COLUMNS = ["import_torch_s", "import_edgevid_text_s", "load_s", "first_encode_s", "warm_encode_s"]


def measure_once(kind: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", CHILD, kind], env=env, cwd=root,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the child")
    parser.add_argument("--kind", default="minilm-l6-v2", choices=["minilm-l6-v2"])
    args = parser.parse_args()

    runs = [measure_once(args.kind, args.threads) for _ in range(args.repeats)]
    print(f"{'run':>6} " + " ".join(f"{c:>22}" for c in COLUMNS) + "  heavy imports")
    for i, r in enumerate(runs):
        print(f"{i:>6} " + " ".join(f"{r[c] * 1000:>20.1f}ms" for c in COLUMNS) + f"  {r['heavy_imports'] or '-'}")
    median = {c: statistics.median(r[c] for r in runs) for c in COLUMNS}
    print(f"{'median':>6} " + " ".join(f"{median[c] * 1000:>20.1f}ms" for c in COLUMNS))
    median["import_text_plus_load_s"] = median["import_edgevid_text_s"] + median["load_s"]
    print(json.dumps({"kind": args.kind, "threads": args.threads, "repeats": args.repeats,
                      "median": median, "runs": runs}))


if __name__ == "__main__":
    main()
