"""Effect of the opt-in fast paths on one batch: eager vs ``--compile`` (torch.compile of the UNet).

    python benchmarks/fast_paths.py          # the bundled tiny checkpoint, CPU, 1 thread
"""
import time, numpy as np, torch
torch.set_num_threads(1)
from marigold_bench.inference import load_predictor
rgb = np.random.default_rng(0).integers(0, 255, (72, 96, 3), dtype=np.uint8)
for compile in (False, True):
    p = load_predictor("marigold_bench/checkpoints/tiny", compile=compile, batch_size=10)
    jobs = [("x", rgb, list(range(10)))]
    t = time.perf_counter(); p.predict(jobs); first = time.perf_counter() - t
    ts = []
    for _ in range(5):
        t = time.perf_counter(); p.predict(jobs); ts.append(time.perf_counter() - t)
    print(f"compile={compile}: first call {first:.2f} s, then median {np.median(ts)*1000:.1f} ms for 10 members (72x96, 1 step, 1 thread)")
