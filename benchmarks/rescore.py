"""What `rescore` costs next to the run it rescores, as a ratio from one machine and one process tree.

Both sides are the real commands in fresh interpreters, so each pays its own start-up (the run:
torch, diffusers, loading the model; rescore: none of them), on the same run directory:

* **run**: ``marigold-bench run --dataset synthetic --max-samples N --steps S --ensemble E``
  (the bundled tiny checkpoint, CPU);
* **rescore**: ``marigold-bench rescore RUN --out ...`` under the run's own protocol (which must
  reproduce its ``per_sample.csv``), and under ``moge``;
* **sensitivity**: ``rescore RUN --protocol marigold,moge --alignment affine,scale,median``.

The tiny model is far cheaper than a real checkpoint, so the ratio here is a bound: with
SD-v2-size weights the run costs orders of magnitude more and rescore the same.

    python benchmarks/rescore.py                   # 16 scenes, 1 step, N=1, 3 repeats
    python benchmarks/rescore.py --steps 4 --ensemble 5 --json results.jsonl
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--ensemble", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of both sides")
    parser.add_argument("--json", default=None, help="append the JSON line to this file")
    args = parser.parse_args()

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TQDM_DISABLE": "1"}
    cli = [sys.executable, "-m", "marigold_bench.cli"]
    times = {"run": [], "rescore": [], "rescore_moge": [], "sensitivity": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            run_dir = os.path.join(tmp, f"run{r}")  # a fresh run each time: nothing cached
            times["run"].append(timed(cli + ["run", "--dataset", "synthetic", "--max-samples", str(args.samples),
                                             "--steps", str(args.steps), "--ensemble", str(args.ensemble),
                                             "--out", run_dir], env))
            again = os.path.join(tmp, f"again{r}")
            times["rescore"].append(timed(cli + ["rescore", run_dir, "--out", again], env))
            if not filecmp.cmp(os.path.join(run_dir, "per_sample.csv"), os.path.join(again, "per_sample.csv"),
                               shallow=False):
                raise SystemExit("rescore did not reproduce per_sample.csv")
            times["rescore_moge"].append(timed(cli + ["rescore", run_dir, "--protocol", "moge",
                                                      "--out", os.path.join(tmp, f"moge{r}")], env))
            times["sensitivity"].append(timed(cli + ["rescore", run_dir, "--protocol", "marigold,moge",
                                                     "--alignment", "affine,scale,median",
                                                     "--out", os.path.join(tmp, f"sens{r}")], env))
    median = {k: float(np.median(v)) for k, v in times.items()}
    print(f"synthetic, {args.samples} scenes at 72x96, tiny checkpoint, {args.steps} step(s), N={args.ensemble}, "
          f"{args.threads} thread(s), median of {args.repeats}; each command in a fresh interpreter")
    print("| command | wall s | fraction of the run |\n|---|---|---|")
    for key, label in (("run", "run"), ("rescore", "rescore (own protocol)"), ("rescore_moge", "rescore --protocol moge"),
                       ("sensitivity", "rescore, 2 protocols x 3 alignments")):
        print(f"| {label} | {median[key]:.2f} | {median[key] / median['run']:.2f} |")
    record = {"benchmark": "rescore", "samples": args.samples, "steps": args.steps, "ensemble": args.ensemble,
              "threads": args.threads, "repeats": args.repeats, "median_s": median,
              "ratio_rescore_to_run": median["rescore"] / median["run"],
              "machine": platform.processor() or platform.machine(), "python": platform.python_version()}
    line = json.dumps(record)
    print(line)
    if args.json:
        with open(args.json, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
