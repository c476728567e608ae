"""Evaluation throughput: images per second end to end, and where the time of a run goes.

    python benchmarks/evaluation.py                                  # tiny model, synthetic scenes, CPU
    python benchmarks/evaluation.py --steps 1,4 --ensemble 1,10      # two configurations, one table
    python benchmarks/evaluation.py --protocol-only                  # align+metrics at NYU/KITTI/ETH3D size
    python benchmarks/evaluation.py --scaling                        # 1 process vs torchrun with 2 (CPU)
    python benchmarks/evaluation.py --dataset nyu --data-root DIR --samples 50 --workers 4

    # GPU, one self-contained command (no dataset files, no download; random SD-v2-size weights):
    python benchmarks/evaluation.py --model sd2-size --device cuda --precision bf16 \\
        --size 768x768,480x640 --steps 1,4 --ensemble 1,10 --samples 8 --protocol --json eval_gpu.json

Each evaluation is a real ``run_predictor`` call (the code behind ``marigold-bench run``) on a
fresh run directory, after one warm-up prediction. Its time per image is split into

* **load**: waiting for the next item (decoding; see ``--load``),
* **inference**: ``predictor.predict`` (VAE encode, DDIM loop, VAE decode, back on the host),
* **merge**: ``predictor.merge`` (test-time ensembling for N > 1, resize to ground-truth size),
* **align+metrics**: least-squares fit and metrics (``score_sample``), the protocol's own cost,
* **other**: the rest of the wall time (cache writes, run lock, per-sample CSV and summary).

The first three and align+metrics come from the run summary's ``timing`` and a thin wrapper
around ``merge``; "other" is wall time minus their sum. Evaluation overhead is printed as a
percentage of inference: align+metrics alone, and everything that is not inference.

``--steps`` and ``--ensemble`` take comma lists: equal lengths are paired (``1,4`` with ``1,10``
gives 1 step N=1 and 4 steps N=10), a single value goes with every value of the other. ``--size``
takes a comma list of HxW; every size runs every configuration. When 480x640 is among the sizes,
the estimate of a full NYU run (654 images at 480x640) uses it directly; otherwise it is scaled
from the first size by pixel count (and says so).

``--protocol`` adds the per-image cost of the protocol at the real benchmark sizes, without a
model: align+metrics (``score_sample`` with each benchmark's protocol: NYU 480x640 with the Eigen
crop, KITTI 352x1216 with sparse ground truth, ETH3D 4032x6048 with its 1024 px fit cap), the
resize from processing resolution to ground-truth size, and ensembling N=10 members at
processing resolution; next to one 1-step N=1 prediction of the chosen model at that benchmark's
processing resolution, measured in the same process.

``--scaling`` runs the first configuration three times in fresh processes: 1 process with
OMP_NUM_THREADS=1, 1 process with OMP_NUM_THREADS=2, and ``torchrun --standalone
--nproc_per_node 2`` with OMP_NUM_THREADS=1 each, and prints the speed-ups of the last against
both. Its times are measured inside the workers from a barrier to the end of ``run_predictor``
(start-up, imports and model building excluded; the whole launch is reported beside).

Synthetic scenes are rendered before the clock starts by default (``--load memory``): ray-casting
a 768x768 scene costs more than decoding a benchmark's PNG, and would swamp the numbers. With
``--load inline`` they are rendered inside the timed loop, like a dataset is decoded (use with
``--workers``). Real datasets (``--dataset NAME --data-root DIR``) are always read inline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
from tabulate import tabulate

NYU_IMAGES, NYU_SIZE = 654, (480, 640)

#: ground-truth size, processing resolution and share of pixels with ground truth (before the
#: protocol's range and crop), per benchmark. Densities are typical values of the real data:
#: NYU's Kinect depth is dense, KITTI's annotated LiDAR depth covers about one pixel in six,
#: ETH3D's laser scans cover most of the image.
PROTOCOL_CASES = {
    "nyu": ((480, 640), 0, 1.0),
    "kitti": ((352, 1216), 0, 0.16),
    "eth3d": ((4032, 6048), 756, 0.6),
}


# --------------------------------------------------------------------------- small helpers

def parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) == 1:
        return int(parts[0]), int(parts[0])
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"size must be HxW, got {text!r}")
    return int(parts[0]), int(parts[1])


def parse_list(text: str, parse=int) -> list:
    return [parse(part) for part in text.split(",") if part.strip()]


def configurations(steps: list[int], ensemble: list[int]) -> list[tuple[int, int]]:
    """Pair the step and ensemble lists (a single value goes with every value of the other)."""
    if len(steps) == 1:
        steps = steps * len(ensemble)
    if len(ensemble) == 1:
        ensemble = ensemble * len(steps)
    if len(steps) != len(ensemble):
        raise SystemExit(f"--steps ({len(steps)} values) and --ensemble ({len(ensemble)} values) "
                         "must have the same length, or one of them a single value")
    return list(zip(steps, ensemble))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    import accelerate
    import diffusers

    import marigold_bench

    info = {
        "cpu": cpu_model(),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "versions": {"marigold_bench": marigold_bench.__version__, "torch": torch.__version__,
                     "diffusers": diffusers.__version__, "accelerate": accelerate.__version__,
                     "numpy": np.__version__},
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
    return info


def fmt(value, digits=1):
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}"


# --------------------------------------------------------------------------- data

class InMemory:
    """A dataset whose items were loaded before the clock starts (``--load memory``).

    Implements what the run loop uses (``protocol``, ``ids``, ``len``, indexing, ``describe``);
    items not prepared in advance are loaded on demand from the wrapped dataset.
    """

    def __init__(self, dataset, indices=None):
        self.dataset, self.protocol, self.ids = dataset, dataset.protocol, dataset.ids
        indices = range(len(dataset)) if indices is None else indices
        t0 = time.perf_counter()
        self.items = dict(zip(indices, _render(dataset, list(indices))))
        self.prepare_s = time.perf_counter() - t0

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, index):
        item = self.items.get(index)
        return item if item is not None else self.dataset[index]

    def describe(self):
        return {**self.dataset.describe(), "load": "memory"}


def _render(dataset, indices):
    """Items of ``dataset`` at ``indices``, in several processes when there are spare cores."""
    spare = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()) or 1
    if spare <= 2 or len(indices) <= 2 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return [dataset[i] for i in indices]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(spare - 1, len(indices))) as pool:
        return list(pool.map(dataset.__getitem__, indices))


def open_dataset(args, size, indices=None):
    """The dataset of one measurement: synthetic scenes at ``size``, or a real benchmark."""
    if args.dataset == "synthetic":
        from marigold_bench.data.synthetic import SyntheticDataset

        dataset = SyntheticDataset(f"test:{args.samples}", height=size[0], width=size[1])
        return InMemory(dataset, indices) if args.load == "memory" else dataset
    from marigold_bench.data import load_dataset

    return load_dataset(args.dataset, args.data_root, args.split).subset(args.samples)


# --------------------------------------------------------------------------- models

class ModelFactory:
    """Predictors for ``--model`` at any (steps, N); weights are built or loaded once."""

    def __init__(self, args):
        self.args = args
        self.pipeline = None
        self.build_s = 0.0
        name = args.model
        if name.startswith("baseline:") or name not in ("tiny", "sd2-size"):
            return  # baselines have no weights; checkpoint folders are loaded per predictor
        from marigold_bench.inference.predictor import PRECISIONS, resolve_device

        device, dtype = resolve_device(args.device), PRECISIONS[args.precision]
        t0 = time.perf_counter()
        if name == "tiny":
            from marigold_bench.model.tiny import build_tiny_pipeline

            self.pipeline = build_tiny_pipeline(seed=0)
        else:
            from marigold_bench.model.sd2_configs import build_sd2_size_pipeline

            self.pipeline = build_sd2_size_pipeline(device=device, dtype=dtype)
        self.build_s = time.perf_counter() - t0

    def __call__(self, steps: int, ensemble: int, processing_res: int):
        args = self.args
        if args.model.startswith("baseline:"):
            from marigold_bench.inference.baseline import BaselinePredictor

            return BaselinePredictor(args.model.split(":", 1)[1], ensemble=ensemble)
        settings = dict(steps=steps, ensemble=ensemble, processing_res=processing_res,
                        batch_size=args.batch_size, precision=args.precision, device=args.device,
                        seed=args.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dtype casts and spacing notes, once per predictor
            if self.pipeline is not None:
                from marigold_bench.inference.predictor import MarigoldPredictor

                return MarigoldPredictor.from_pipeline(self.pipeline, model=args.model, **settings)
            from marigold_bench.inference import load_predictor

            return load_predictor(args.model, **settings)


class MergeTimer:
    """The predictor interface of the run loop, timing ``merge`` (the summary does not)."""

    def __init__(self, inner):
        self.inner, self.merge_s = inner, 0.0

    @property
    def settings(self):
        return self.inner.settings

    @property
    def device(self):  # run_predictor scores on the predictor's GPU when it has one
        return getattr(self.inner, "device", None)

    def predict(self, jobs):
        return self.inner.predict(jobs)

    def merge(self, members, shape):
        t0 = time.perf_counter()
        try:
            return self.inner.merge(members, shape)
        finally:
            self.merge_s += time.perf_counter() - t0


def warm_up(predictor, item, ensemble, protocol, images_per_batch=0):
    """One full predict call of the run's batch shape, and one scoring, outside the clock:
    kernels loaded and chosen, caches and allocators warm. On a GPU a cold call at a new batch
    shape costs several times a warm one, and the first float64 scoring ~100 ms of kernel loading."""
    from marigold_bench.eval.evaluator import resolve_images_per_batch, resolve_score_device, score_sample

    images = resolve_images_per_batch(images_per_batch, predictor)
    jobs = [(f"warmup{i}/{item['id']}", item["rgb"], list(range(ensemble))) for i in range(images)]
    members = predictor.predict(jobs)[0]
    depth, _ = predictor.merge(members, item["depth"].shape)
    score_sample(item, depth, protocol, resolve_score_device("auto", predictor))


def processing_res(args, dataset) -> int:
    return args.processing_res if args.processing_res is not None else dataset.protocol.processing_res


# --------------------------------------------------------------------------- one evaluation

def evaluate_once(args, dataset, predictor, ensemble, out_dir=None, warm_index=0):
    """Time one ``run_predictor`` call on a fresh run directory; returns the row of numbers."""
    from marigold_bench.eval.distributed import Context
    from marigold_bench.eval.evaluator import run_predictor

    warm_up(predictor, dataset[warm_index], ensemble, dataset.protocol, args.images_per_batch)
    timer = MergeTimer(predictor)
    context = Context()
    own_dir = out_dir is None
    out_dir = out_dir or tempfile.mkdtemp(prefix="mb-eval-")
    try:
        context.barrier()
        t0 = time.perf_counter()
        summary = run_predictor(dataset, timer, out_dir, progress=False,
                                images_per_batch=args.images_per_batch, workers=args.workers, context=context)
        wall = time.perf_counter() - t0
    finally:
        if own_dir and context.is_main:
            shutil.rmtree(out_dir, ignore_errors=True)
    timing = summary["timing"]
    return {"n": summary["n_total"], "n_ok": summary["n"], "wall_s": wall, "load_s": timing["load_s"],
            "predict_s": timing["predict_s"], "score_s": timing["score_s"], "merge_s": timer.merge_s,
            "processes": timing["processes"], "abs_rel": summary["metrics"].get("abs_rel")}


def describe_row(row: dict) -> dict:
    """Per-image figures and percentages of one evaluation.

    ``load_s``, ``predict_s``, ``merge_s`` and ``score_s`` are summed over processes; with
    several processes they are spread over the wall time, so the per-image figures below divide
    by ``n / processes`` images each."""
    n, procs = row["n"], row["processes"]
    per = 1000.0 * procs / n  # ms per image, from seconds summed over processes
    busy = row["load_s"] + row["predict_s"] + row["merge_s"] + row["score_s"]
    inference = row["predict_s"]
    out = {
        "images_per_s": n / row["wall_s"],
        "ms_per_image": 1000.0 * row["wall_s"] / n,
        "load_ms": row["load_s"] * per,
        "inference_ms": inference * per,
        "merge_ms": row["merge_s"] * per,
        "score_ms": row["score_s"] * per,
        "other_ms": max(row["wall_s"] * procs - busy, 0.0) * per,
    }
    meaningful = inference > 1e-3 * n  # a baseline "predicts" in microseconds: no percentage
    out["score_pct_of_inference"] = 100.0 * row["score_s"] / inference if meaningful else None
    out["non_inference_pct_of_inference"] = (
        100.0 * (row["wall_s"] * procs - inference) / inference if meaningful else None)
    return out


# --------------------------------------------------------------------------- protocol cost

def median_time(fn, repeats: int, warm: bool = False) -> float:
    if warm:
        fn()  # first-call costs (lazy imports, allocations) are not the steady state
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def protocol_item(name: str, shape, density: float, rng):
    """A ground truth of the benchmark's size, range and density, and a prediction for it."""
    from marigold_bench.data.protocol import get_protocol, valid_mask

    protocol = get_protocol(name)
    h, w = shape
    top = min(protocol.max_depth, 80.0) * 0.9
    rows = np.linspace(1.0, 0.05, h, dtype=np.float32)[:, None]
    depth = (top * rows + rng.uniform(-0.02, 0.02, (h, w)).astype(np.float32) * top).clip(0.5, None)
    base = rng.random((h, w), dtype=np.float32) < density
    valid = valid_mask(depth, protocol, base)
    # an affine-invariant prediction: roughly inverse-affine of depth, in [0, 1], with noise
    pred = (depth / depth.max() * 0.8 + 0.1 + rng.normal(0, 0.01, (h, w))).astype(np.float32)
    item = {"id": f"{name}/protocol", "rgb": None, "depth": depth.astype(np.float32), "valid": valid}
    return protocol, item, pred


def _whole_frame(item, pred, protocol):
    """Arguments of compute_metrics after aligning the whole frame (`align_and_clip`)."""
    from marigold_bench.eval.align import align_and_clip

    aligned, _, _ = align_and_clip(pred, item["depth"], item["valid"], protocol)
    return aligned, item["depth"], item["valid"]


def measure_protocol(args, factory) -> list[dict]:
    """Protocol-side cost per image at NYU, KITTI and ETH3D size; 1-step inference beside it."""
    from marigold_bench.eval.evaluator import score_sample
    from marigold_bench.eval.metrics import compute_metrics
    from marigold_bench.inference import ensemble_depth
    from marigold_bench.inference.images import processing_size, resize_prediction

    rng = np.random.default_rng(0)
    from marigold_bench.inference.predictor import resolve_device

    device = resolve_device(args.device)
    on_gpu = device.type == "cuda"
    rows = []
    for name, (shape, res, density) in PROTOCOL_CASES.items():
        repeats = 3 if shape[0] * shape[1] > 4_000_000 else args.repeats
        protocol, item, pred = protocol_item(name, shape, density, rng)
        host_score_s = median_time(lambda: score_sample(item, pred, protocol), repeats)
        # the same numbers the straightforward way: align the whole frame, then score it
        whole_frame_s = median_time(lambda: compute_metrics(*_whole_frame(item, pred, protocol)), repeats)
        proc_hw = processing_size(*shape, res) if res else tuple(shape)
        small = torch.from_numpy(rng.random(proc_hw, dtype=np.float32))[None, None]
        host_resize_s = resize_s = 0.0
        if proc_hw != tuple(shape):
            host_resize_s = median_time(lambda: resize_prediction(small, shape), repeats)
        score_s, resize_s = host_score_s, host_resize_s
        if on_gpu:  # what a run on this GPU does (--score-device auto): from host arrays to floats
            score_s = median_time(lambda: score_sample(item, pred, protocol, device=device), repeats, warm=True)
            if proc_hw != tuple(shape):
                resize_s = median_time(lambda: resize_prediction(small.to(device), shape).cpu(), repeats, warm=True)
        members = np.clip(small[0, 0].numpy()[None] + rng.normal(0, 0.02, (10, *proc_hw)), 0, 1).astype(np.float32)
        ensemble_s = median_time(lambda: ensemble_depth(members), max(1, repeats // 2), warm=True)
        gpu_ensemble_s = None
        if on_gpu:  # what predictor.merge does on a GPU: members moved there, ensembled there
            gpu_ensemble_s = median_time(lambda: ensemble_depth(torch.from_numpy(members).to(device))[0].cpu(),
                                         max(1, repeats // 2), warm=True)
        infer_s = None
        if not args.model.startswith("baseline:"):
            predictor = factory(1, 1, res)
            # the full-size image, as a run feeds it: resizing to the processing size is inference
            image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
            job = [(f"{name}/timing", image, [0])]
            predictor.predict(job)  # warm-up at this size
            infer_s = median_time(lambda: predictor.predict(job), args.infer_repeats)
        row = {"dataset": name, "gt_size": list(shape), "processing_size": list(proc_hw),
               "valid_px": int(item["valid"].sum()), "score_ms": 1000 * score_s, "resize_ms": 1000 * resize_s,
               "score_device": str(device) if on_gpu else "cpu (numpy)",
               "host_score_ms": 1000 * host_score_s, "host_resize_ms": 1000 * host_resize_s,
               "host_whole_frame_ms": 1000 * whole_frame_s, "row_blocks_speedup": whole_frame_s / host_score_s,
               "ensemble10_ms": 1000 * ensemble_s,
               "ensemble10_gpu_ms": None if gpu_ensemble_s is None else 1000 * gpu_ensemble_s,
               "inference_1step_ms": None if infer_s is None else 1000 * infer_s}
        if infer_s:
            row["score_pct_of_1step"] = 100 * score_s / infer_s
            row["score_resize_pct_of_1step"] = 100 * (score_s + resize_s) / infer_s
        rows.append(row)
        print(f"protocol {name}: align+metrics {1000 * score_s:.1f} ms/image; on the host "
              f"{1000 * host_score_s:.1f} ms in row blocks against {1000 * whole_frame_s:.1f} ms for "
              f"whole-frame alignment ({whole_frame_s / host_score_s:.2f}x)", file=sys.stderr)
    return rows


# --------------------------------------------------------------------------- scaling

def worker_flags(args, size, steps, ensemble) -> list[str]:
    """The flags that make a worker run exactly the first configuration of this invocation."""
    flags = ["--model", args.model, "--dataset", args.dataset, "--size", f"{size[0]}x{size[1]}",
             "--steps", str(steps), "--ensemble", str(ensemble), "--samples", str(args.samples),
             "--precision", args.precision, "--device", args.device, "--batch-size", str(args.batch_size),
             "--images-per-batch", str(args.images_per_batch), "--workers", str(args.workers),
             "--seed", str(args.seed), "--load", args.load]
    if args.data_root:
        flags += ["--data-root", args.data_root]
    if args.split:
        flags += ["--split", args.split]
    if args.processing_res is not None:
        flags += ["--processing-res", str(args.processing_res)]
    return flags


def run_worker(args) -> int:
    """``--worker-out DIR``: one process of a scaling measurement (plain or under torchrun)."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    size = parse_size(args.size.split(",")[0])
    steps, ensemble = configurations(parse_list(args.steps), parse_list(args.ensemble))[0]
    dataset = open_dataset(args, size, indices=range(rank, args.samples, world))
    predictor = ModelFactory(args)(steps, ensemble, processing_res(args, dataset))
    row = evaluate_once(args, dataset, predictor, ensemble, out_dir=os.path.join(args.worker_out, "run"),
                        warm_index=min(rank, len(dataset) - 1))
    row.update(rank=rank, world=world, threads=torch.get_num_threads(), omp=os.environ.get("OMP_NUM_THREADS"))
    with open(os.path.join(args.worker_out, f"rank{rank}.json"), "w") as f:
        json.dump(row, f)
    return 0


def measure_scaling(args, size, steps, ensemble) -> dict:
    script = os.path.abspath(__file__)
    flags = worker_flags(args, size, steps, ensemble)
    variants = [
        ("1 process x 1 thread", 1, 1),
        ("1 process x 2 threads", 1, 2),
        (f"{args.nproc} processes x 1 thread (torchrun)", args.nproc, 1),
    ]
    results = []
    for label, nproc, threads in variants:
        out = tempfile.mkdtemp(prefix="mb-scale-")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        if nproc == 1:
            cmd = [sys.executable, script, *flags, "--worker-out", out]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                   str(nproc), script, *flags, "--worker-out", out]
        print(f"scaling: {label} ...", file=sys.stderr)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.scaling_timeout)
        launch_s = time.perf_counter() - t0
        if done.returncode != 0:
            shutil.rmtree(out, ignore_errors=True)
            raise SystemExit(f"scaling run '{label}' failed ({done.returncode}):\n{done.stderr[-3000:]}")
        ranks = []
        for r in range(nproc):
            with open(os.path.join(out, f"rank{r}.json")) as f:
                ranks.append(json.load(f))
        shutil.rmtree(out, ignore_errors=True)
        wall = max(r["wall_s"] for r in ranks)
        results.append({"label": label, "processes": nproc, "threads_per_process": threads,
                        "wall_s": wall, "images_per_s": args.samples / wall, "launch_s": launch_s,
                        "ranks": ranks})
    one_thread, two_threads, sharded = results
    return {"size": list(size), "steps": steps, "ensemble": ensemble, "samples": args.samples,
            "variants": results,
            "speedup_vs_1x1": one_thread["wall_s"] / sharded["wall_s"],
            "speedup_vs_1x2": two_threads["wall_s"] / sharded["wall_s"],
            "threads_speedup_1x2_vs_1x1": one_thread["wall_s"] / two_threads["wall_s"]}


# --------------------------------------------------------------------------- main

def nyu_estimates(rows: list[dict]) -> list[dict]:
    """Minutes for the 654 NYU images at 480x640, per (steps, N), from the runs made."""
    out = []
    for (steps, n) in dict.fromkeys((r["steps"], r["ensemble"]) for r in rows):
        mine = [r for r in rows if (r["steps"], r["ensemble"]) == (steps, n)]
        exact = [r for r in mine if tuple(r["size"]) == NYU_SIZE]
        base = (exact or mine)[0]
        scale = 1.0 if exact else (NYU_SIZE[0] * NYU_SIZE[1]) / (base["size"][0] * base["size"][1])
        ms = base["ms_per_image"] * scale
        out.append({"steps": steps, "ensemble": n, "ms_per_image": ms, "minutes": NYU_IMAGES * ms / 60000,
                    "basis": "measured at 480x640" if exact else
                    f"scaled by pixel count from {base['size'][0]}x{base['size'][1]}"})
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny",
                   help="tiny | sd2-size (random weights of SD-v2's size) | baseline:ramp | checkpoint DIR")
    p.add_argument("--dataset", default="synthetic", help="synthetic, or a benchmark with --data-root")
    p.add_argument("--data-root", default=None)
    p.add_argument("--split", default=None)
    p.add_argument("--size", default="72x96", help="synthetic scene size(s), comma list of HxW")
    p.add_argument("--steps", default="1", help="DDIM steps, comma list")
    p.add_argument("--ensemble", default="1", help="ensemble size(s) N, comma list")
    p.add_argument("--samples", type=int, default=32, help="images per evaluation")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (run --workers)")
    p.add_argument("--images-per-batch", type=int, default=0, help="run --images-per-batch (0 = auto)")
    p.add_argument("--batch-size", type=int, default=0, help="member batch size (0 = auto)")
    p.add_argument("--processing-res", type=int, default=None, help="default: the dataset protocol's")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--load", choices=("memory", "inline"), default="memory",
                   help="synthetic scenes rendered before the clock (memory) or inside it (inline)")
    p.add_argument("--protocol", action="store_true", help="also measure the protocol's cost at benchmark sizes")
    p.add_argument("--protocol-only", action="store_true", help="only the protocol's cost (no evaluation runs)")
    p.add_argument("--repeats", type=int, default=5, help="repeats of each protocol timing (median)")
    p.add_argument("--infer-repeats", type=int, default=2, help="repeats of the 1-step inference timing")
    p.add_argument("--scaling", action="store_true", help="1 process vs torchrun --nproc_per_node NPROC")
    p.add_argument("--nproc", type=int, default=2, help="processes of the sharded --scaling run")
    p.add_argument("--scaling-timeout", type=int, default=3600)
    p.add_argument("--json", default=None, help="write every result to this JSON file")
    p.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker_out:
        return run_worker(args)

    sizes = parse_list(args.size, parse_size)
    configs = configurations(parse_list(args.steps), parse_list(args.ensemble))
    result = {"command": " ".join([os.path.basename(sys.executable), *sys.argv]),
              "model": args.model, "dataset": args.dataset, "precision": args.precision, "runs": []}
    if args.dataset != "synthetic":
        sizes = sizes[:1]  # a real benchmark has its own sizes
    # Scenes are rendered (in forked processes) before any model touches the GPU.
    datasets = [] if args.protocol_only else [(size, open_dataset(args, size)) for size in sizes]
    result["machine"] = machine()
    factory = ModelFactory(args)
    result["model_build_s"] = factory.build_s

    table = []
    if not args.protocol_only:
        for size, dataset in datasets:
            where = f"{size[0]}x{size[1]}" if args.dataset == "synthetic" else args.dataset
            for steps, ensemble in configs:
                predictor = factory(steps, ensemble, processing_res(args, dataset))
                print(f"evaluating {args.model} on {where}, {steps} steps, N={ensemble} ...", file=sys.stderr)
                row = evaluate_once(args, dataset, predictor, ensemble)
                row.update(size=list(size) if args.dataset == "synthetic" else None, steps=steps,
                           ensemble=ensemble, device=str(predictor.settings.get("device", "cpu")),
                           prepare_s=getattr(dataset, "prepare_s", None))
                row.update(describe_row(row))
                result["runs"].append(row)
                table.append([f"{size[0]}x{size[1]}" if row["size"] else args.dataset, steps, ensemble, row["n"],
                              fmt(row["images_per_s"], 2), fmt(row["ms_per_image"]), fmt(row["load_ms"]),
                              fmt(row["inference_ms"]), fmt(row["merge_ms"]), fmt(row["score_ms"]),
                              fmt(row["other_ms"]), fmt(row["score_pct_of_inference"]),
                              fmt(row["non_inference_pct_of_inference"])])
        print(f"\n{args.model} on {args.dataset}, {args.precision}, device {result['runs'][0]['device']}, "
              f"{torch.get_num_threads()} threads ({result['machine'].get('gpu') or result['machine']['cpu']})")
        print(tabulate(table, headers=["size", "steps", "N", "n", "img/s", "ms/img", "load", "inference", "merge",
                                       "align+metrics", "other", "a+m % of inf", "non-inf % of inf"],
                       tablefmt="github", disable_numparse=True))
        if args.dataset == "synthetic":
            result["nyu_estimate"] = nyu_estimates(result["runs"])
            print("\nfull NYU run (654 images at 480x640), one process:")
            print(tabulate([[e["steps"], e["ensemble"], fmt(e["ms_per_image"]), fmt(e["minutes"], 2), e["basis"]]
                            for e in result["nyu_estimate"]],
                           headers=["steps", "N", "ms/img", "minutes", "basis"], tablefmt="github",
                           disable_numparse=True))

    if args.protocol or args.protocol_only:
        result["protocol"] = measure_protocol(args, factory)
        print("\nprotocol cost per image (no model; ms) beside one 1-step N=1 prediction of "
              f"{args.model} at the benchmark's processing size:")
        print(tabulate([[r["dataset"], "x".join(map(str, r["gt_size"])), "x".join(map(str, r["processing_size"])),
                         r["valid_px"], r["score_device"], fmt(r["score_ms"]), fmt(r["resize_ms"]), fmt(r["ensemble10_ms"]), fmt(r["ensemble10_gpu_ms"]),
                         fmt(r["inference_1step_ms"]), fmt(r.get("score_pct_of_1step")),
                         fmt(r.get("score_resize_pct_of_1step"))] for r in result["protocol"]],
                       headers=["benchmark", "GT size", "proc. size", "valid px", "scored on", "align+metrics", "resize to GT",
                                "ensemble N=10 (host)", "ensemble N=10 (GPU)", "1-step inference", "a+m % of 1-step",
                                "a+m+resize % of 1-step"], tablefmt="github", disable_numparse=True))

    if args.scaling:
        (steps, ensemble), size = configs[0], sizes[0]
        scaling = measure_scaling(args, size, steps, ensemble)
        result["scaling"] = scaling
        print(f"\nscaling: {args.model}, {size[0]}x{size[1]}, {steps} steps, N={ensemble}, {args.samples} images "
              f"(times from a barrier to the end of run_predictor; whole launch beside)")
        print(tabulate([[v["label"], fmt(v["wall_s"], 2), fmt(v["images_per_s"], 2), fmt(v["launch_s"], 1)]
                        for v in scaling["variants"]],
                       headers=["launch", "run s", "img/s", "launch s"], tablefmt="github", disable_numparse=True))
        print(f"speed-up of {args.nproc} processes: {scaling['speedup_vs_1x1']:.2f}x vs 1 process x 1 thread, "
              f"{scaling['speedup_vs_1x2']:.2f}x vs 1 process x 2 threads "
              f"(threads alone: {scaling['threads_speedup_1x2_vs_1x1']:.2f}x)")

    if hasattr(os, "getloadavg"):
        result["machine"]["load_average_end"] = list(os.getloadavg())
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
