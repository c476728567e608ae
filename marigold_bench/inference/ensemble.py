"""Test-time ensembling: align N affine-invariant depth maps to each other and merge them.

This is the paper's Eq. 4. Every member ``m_i`` gets a scale ``s_i`` and shift ``t_i``; they are
chosen to minimise

    sum over pairs i < j of RMS(a_i - a_j)  +  lambda * (|min(merged)| + |1 - max(merged)|)

where ``a_i = s_i * m_i + t_i`` and ``merged`` is the pixel-wise median (or mean) of the ``a_i``.
The fit starts from ``s_i = 1 / (max - min)``, ``t_i = -s_i * min`` and runs BFGS on a copy whose
longer side is at most ``max_res``. The merged map is finally stretched to [0, 1].

Why not call ``diffusers.MarigoldDepthPipeline.ensemble_depth``: it evaluates the pair term with a
Python loop over all ``N(N-1)/2`` pairs at full resolution, and lets scipy estimate the gradient by
finite differences, i.e. ``2N + 1`` evaluations of that loop per BFGS step. Here the pair term
only needs the members' means and covariance matrix (computed once), so it and its exact gradient
cost O(N^2) per evaluation; only the regulariser still touches the pixels.

What the reference implementations actually optimise (``fit``). diffusers keeps the parameters in
float64 but evaluates the objective in float32. BFGS's finite-difference step (1.5e-8, scipy's
default) is below half a float32 ulp of any scale ``s >= 0.5`` (and ``s >= 1`` for members in
[0, 1]), so the perturbed scale rounds back to itself: the estimated gradient of every scale is
exactly 0 and the scales never leave their initial values; only the shifts move, along gradients
dominated by float32 round-off. This matters, because Eq. 4 taken literally is degenerate: all
scales -> 0 makes every pair term vanish and costs only ``lambda``. An exact solver given 50
iterations (the current official setting) collapses the members onto a constant. Hence
``fit="shift"`` (the default, and the diffusers/official presets): the scales stay at their
initial values and BFGS fits the shifts with the exact gradient -- what those implementations
do, minus the round-off. ``fit="scale_shift"`` fits both, as the CVPR release did (its float32
parameters make scipy fall back to a float32-sized step, so its scales did move, for two
iterations).
Because diffusers' shift steps are round-off driven, no implementation reproduces its output to
better than about 1e-2; the objective itself equals diffusers' to 1e-6 (tests compare it with
diffusers' own cost function), as does everything downstream of the fit.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

#: Named ensembling settings found in the wild (docs/parity.md, "Ensembling presets").
#: ``cost="pairwise"`` sums one RMS per member pair; ``cost="joint"`` takes a single RMS over the
#: differences of all pairs together, as the CVPR release did. ``max_res=None`` fits at full size.
#: ``fit`` says which parameters move (see the module docstring).
ENSEMBLING_PRESETS: dict[str, dict[str, Any]] = {
    # diffusers' MarigoldDepthPipeline defaults.
    "diffusers": dict(reduction="median", regularizer_strength=0.02, max_iter=2, tol=1e-3,
                      max_res=1024, cost="pairwise", fit="shift"),
    # prs-eth/Marigold, current (v1-1 era, from March 2025).
    "official": dict(reduction="median", regularizer_strength=0.02, max_iter=50, tol=1e-6,
                     max_res=1024, cost="pairwise", fit="shift"),
    # prs-eth/Marigold between May 2024 and March 2025: two steps on a 50 px copy.
    "official-2024": dict(reduction="median", regularizer_strength=0.02, max_iter=2, tol=1e-3,
                          max_res=50, cost="pairwise", fit="shift"),
    # The CVPR 2024 release that produced the v1-0 numbers.
    "cvpr": dict(reduction="median", regularizer_strength=0.02, max_iter=2, tol=1e-3,
                 max_res=None, cost="joint", fit="scale_shift"),
}

_SETTING_KEYS = ("reduction", "regularizer_strength", "max_iter", "tol", "max_res", "cost", "fit")


def resolve_ensembling(spec: str | dict | None = "diffusers") -> dict[str, Any]:
    """Turn a preset name or a dict of overrides into the full set of ensembling settings.

    Args:
        spec (`str` or `dict` or `None`):
            A key of `ENSEMBLING_PRESETS`, or a dict of settings. A dict may name its starting point
            with ``"preset"`` (default ``"diffusers"``) and override any of ``reduction``,
            ``regularizer_strength``, ``max_iter``, ``tol``, ``max_res``, ``cost`` and ``fit``.

    Returns:
        `dict`: ``preset`` plus every setting, JSON-serialisable (what a run records).
    """
    if spec is None:
        spec = "diffusers"
    if isinstance(spec, str):
        spec = {"preset": spec}
    if not isinstance(spec, dict):
        raise TypeError(f"ensembling must be a preset name or a dict, got {type(spec).__name__}")
    overrides = dict(spec)
    name = overrides.pop("preset", "diffusers")
    if name not in ENSEMBLING_PRESETS:
        raise ValueError(f"unknown ensembling preset {name!r}; choose one of {', '.join(ENSEMBLING_PRESETS)}")
    unknown = set(overrides) - set(_SETTING_KEYS)
    if unknown:
        raise ValueError(f"unknown ensembling settings: {', '.join(sorted(unknown))}")
    settings = dict(ENSEMBLING_PRESETS[name], **overrides)
    # A run that overrides a preset is no longer that preset; say so in what gets recorded.
    label = name if settings == ENSEMBLING_PRESETS[name] else f"{name}+custom"
    _check_settings(settings)
    return {"preset": label, **settings}


def _check_settings(s: dict) -> None:
    if s["reduction"] not in ("median", "mean"):
        raise ValueError(f"reduction must be 'median' or 'mean', got {s['reduction']!r}")
    if s["cost"] not in ("pairwise", "joint"):
        raise ValueError(f"cost must be 'pairwise' or 'joint', got {s['cost']!r}")
    if s.get("fit", "shift") not in ("shift", "scale_shift"):
        raise ValueError(f"fit must be 'shift' or 'scale_shift', got {s['fit']!r}")
    if s["max_res"] is not None and int(s["max_res"]) < 1:
        raise ValueError("max_res must be positive or None")
    if int(s["max_iter"]) < 0:
        raise ValueError("max_iter must be >= 0")


def _as_members(depths) -> tuple[torch.Tensor, bool]:
    """E x H x W float tensor from E x H x W or E x 1 x H x W numpy/torch input."""
    was_numpy = not torch.is_tensor(depths)
    t = torch.from_numpy(np.asarray(depths)) if was_numpy else depths
    if t.dim() == 4:
        if t.shape[1] != 1:
            raise ValueError(f"expected E x 1 x H x W, got {tuple(t.shape)}")
        t = t[:, 0]
    if t.dim() != 3:
        raise ValueError(f"expected E x H x W (or E x 1 x H x W) members, got shape {tuple(t.shape)}")
    if t.shape[0] < 1:
        raise ValueError("need at least one ensemble member")
    if not torch.is_floating_point(t):
        t = t.float()
    return t, was_numpy


def _shrink_to(members: torch.Tensor, max_res: int | None) -> torch.Tensor:
    """The fit copy: longer side reduced to ``max_res`` by nearest-exact sampling (as diffusers)."""
    h, w = members.shape[-2:]
    if max_res is None or max(h, w) <= max_res:
        return members
    long_side = max(h, w)
    size = (h * max_res // long_side, w * max_res // long_side)
    if min(size) == 0:
        raise ValueError(f"extreme aspect ratio {w}x{h} for ensembling at max_res={max_res}")
    return F.interpolate(members[:, None], size=size, mode="nearest-exact")[:, 0]


class _Objective:
    """Eq. 4 with its exact gradient, over x = [s_1..s_E, t_1..t_E] (float64).

    ``engine="numpy"`` evaluates the regulariser on the host; ``"torch"`` on the members' device
    (one synchronisation per evaluation), which on a GPU avoids moving the members to the host
    and partitioning them there at every BFGS evaluation.
    """

    def __init__(self, members: torch.Tensor, reduction: str, regularizer_strength: float, cost: str,
                 engine: str = "numpy"):
        e = members.shape[0]
        flat = members.reshape(e, -1)
        self.engine = engine
        if engine == "torch":
            self.cols = flat.float()                 # E x P on the members' device
        else:
            # The regulariser needs one order statistic per pixel at every evaluation; numpy's
            # partition on a pixel-major float32 copy does that about twice as fast as
            # torch.median on the CPU.
            self.rows = np.ascontiguousarray(flat.float().cpu().numpy().T)
        self.e = e
        self.reduction = reduction
        self.lam = float(regularizer_strength)
        self.cost = cost
        # The pair term depends on the members only through their means and covariances;
        # centring first keeps the float64 differences exact enough when members nearly agree.
        flat64 = (flat.cpu() if flat.device.type == "mps" else flat).double()   # MPS has no float64
        self.mu = flat64.mean(dim=1).cpu().numpy()
        centred = flat64 - flat64.mean(dim=1, keepdim=True)
        self.cov = (centred @ centred.T / centred.shape[1]).cpu().numpy()
        self.n_pairs = e * (e - 1) // 2
        self.off_diag = ~np.eye(e, dtype=bool)

    def pair_term(self, s: np.ndarray, t: np.ndarray):
        """Pair cost and its gradient w.r.t. s and t."""
        e = self.e
        if e < 2:
            return 0.0, np.zeros(e), np.zeros(e)
        cov_s = self.cov * np.outer(s, s)
        diag = np.diag(cov_s)
        offset = s * self.mu + t                     # mean of each aligned member
        gap = offset[:, None] - offset[None, :]
        msd = diag[:, None] + diag[None, :] - 2.0 * cov_s + gap**2   # mean squared difference
        msd = np.maximum(msd, 0.0)
        if self.cost == "pairwise":
            rms = np.sqrt(msd)
            value = rms[np.triu_indices(e, 1)].sum()
            # d sqrt(x)/dx is unbounded at 0; a pair that already agrees exactly contributes no
            # direction (its subgradient 0), which is what keeps identical members in place.
            with np.errstate(divide="ignore"):
                weight = np.where(rms > 1e-12, 0.5 / rms, 0.0)
        else:
            total = msd[np.triu_indices(e, 1)].sum() / self.n_pairs
            value = np.sqrt(total)
            weight = np.full((e, e), 0.5 / (value * self.n_pairs) if value > 1e-12 else 0.0)
        weight = weight * self.off_diag
        # d msd_kj / d s_k = 2 s_k C_kk - 2 s_j C_kj + 2 gap_kj mu_k ;  d msd_kj / d t_k = 2 gap_kj
        cs = self.cov * s[None, :]
        d_s = 2.0 * (s * np.diag(self.cov))[:, None] - 2.0 * cs + 2.0 * gap * self.mu[:, None]
        grad_s = (weight * d_s).sum(axis=1)
        grad_t = (weight * 2.0 * gap).sum(axis=1)
        return float(value), grad_s, grad_t

    def _extremes(self, s: np.ndarray, t: np.ndarray):
        """The merged map's nearest and farthest values, and at those two pixels the aligned
        and the raw members (E-vectors, float32), in float32 as the reference implementations."""
        e, s32, t32 = self.e, s.astype(np.float32), t.astype(np.float32)
        if self.engine == "torch":
            device = self.cols.device
            aligned = self.cols * torch.from_numpy(s32).to(device)[:, None] + torch.from_numpy(t32).to(device)[:, None]
            merged = aligned.median(dim=0).values if self.reduction == "median" else aligned.mean(dim=0)
            at = torch.stack([merged.argmin(), merged.argmax()])
            picked = torch.cat([merged[at][None], aligned[:, at], self.cols[:, at]]).cpu().numpy()
            near, far = float(picked[0, 0]), float(picked[0, 1])
            return near, far, (picked[1:e + 1, 0], picked[1:e + 1, 1]), (picked[e + 1:, 0], picked[e + 1:, 1])
        aligned = self.rows * s32 + t32
        if self.reduction == "median":
            k = (e - 1) // 2   # the lower middle value for even E, as torch.median
            merged = np.partition(aligned, k, axis=1)[:, k]
        else:
            merged = aligned.mean(axis=1)
        p_near, p_far = int(np.argmin(merged)), int(np.argmax(merged))
        return (float(merged[p_near]), float(merged[p_far]), (aligned[p_near], aligned[p_far]),
                (self.rows[p_near], self.rows[p_far]))

    def regulariser(self, s: np.ndarray, t: np.ndarray):
        e = self.e
        near, far, aligned, raw = self._extremes(s, t)
        value = self.lam * (abs(near) + abs(1.0 - far))
        grad_s, grad_t = np.zeros(e), np.zeros(e)
        for i, sign in ((0, np.sign(near)), (1, -np.sign(1.0 - far))):
            column = np.asarray(raw[i], dtype=np.float64)
            if self.reduction == "mean":                   # every member contributes 1/E
                grad_s += self.lam * sign * column / e
                grad_t += self.lam * sign / e
            else:                                          # only the member the median picked
                member = int(np.argsort(aligned[i], kind="stable")[(e - 1) // 2])
                grad_s[member] += self.lam * sign * column[member]
                grad_t[member] += self.lam * sign
        return value, grad_s, grad_t

    def __call__(self, x: np.ndarray):
        s, t = x[: self.e], x[self.e:]
        value, gs, gt = self.pair_term(s, t)
        if self.lam > 0:
            r_value, r_gs, r_gt = self.regulariser(s, t)
            value, gs, gt = value + r_value, gs + r_gs, gt + r_gt
        return value, np.concatenate([gs, gt])


def ensemble_objective(depths, params, reduction: str = "median", regularizer_strength: float = 0.02,
                       cost: str = "pairwise", engine: str = "auto") -> tuple[float, np.ndarray]:
    """Value and gradient of the ensembling objective at ``params = [s_1..s_E, t_1..t_E]``.

    Exposed for tests and for anyone comparing against another implementation; `ensemble_depth`
    is what inference uses. ``depths`` is taken as given (no downsizing).
    """
    members, _ = _as_members(depths)
    objective = _Objective(members, reduction, regularizer_strength, cost, _engine(engine, members))
    return objective(np.asarray(params, dtype=np.float64))


def _engine(engine: str, members: torch.Tensor) -> str:
    """``auto``: torch for members on a CUDA GPU, numpy (faster on the CPU) otherwise."""
    if engine not in ("auto", "numpy", "torch"):
        raise ValueError(f"engine must be 'auto', 'numpy' or 'torch', got {engine!r}")
    if engine == "auto":
        return "torch" if members.device.type == "cuda" else "numpy"
    return engine


def initial_params(members) -> np.ndarray:
    """``s_i = 1 / (max_i - min_i)`` and ``t_i = -s_i * min_i``: each member stretched to [0, 1]."""
    members, _ = _as_members(members)
    flat = members.reshape(members.shape[0], -1).float()
    lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
    s = 1.0 / (hi - lo).clamp(min=1e-6)
    t = -s * lo
    return torch.cat([s, t]).double().cpu().numpy()


def fit_alignment(depths, reduction: str = "median", regularizer_strength: float = 0.02, max_iter: int = 2,
                  tol: float = 1e-3, max_res: int | None = 1024, cost: str = "pairwise",
                  fit: str = "shift", engine: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The per-member scales and shifts of Eq. 4 (see `ensemble_depth` for the arguments).

    Returns:
        `(s, t)`: two float64 arrays of length E.
    """
    import scipy.optimize

    members, _ = _as_members(depths)
    fit_copy = _shrink_to(members.float(), max_res)
    x0 = initial_params(fit_copy)
    e = members.shape[0]
    if e == 1 or max_iter == 0:
        return x0[:e], x0[e:]
    objective = _Objective(fit_copy, reduction, regularizer_strength, cost, _engine(engine, members))
    if fit == "shift":
        scales = x0[:e]

        def solve_for(shifts):
            value, grad = objective(np.concatenate([scales, shifts]))
            return value, grad[e:]

        start = x0[e:]
    else:
        solve_for, start = objective, x0
    with warnings.catch_warnings():
        # BFGS warns about precision loss when the line search stalls at the optimum; harmless.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy.optimize.minimize(solve_for, start, jac=True, method="BFGS", tol=tol,
                                         options={"maxiter": int(max_iter), "disp": False})
    if fit == "shift":
        return x0[:e], result.x
    return result.x[:e], result.x[e:]


def ensemble_depth(depths, reduction: str = "median", regularizer_strength: float = 0.02, max_iter: int = 2,
                   tol: float = 1e-3, max_res: int | None = 1024, output_uncertainty: bool = True,
                   cost: str = "pairwise", fit: str = "shift", engine: str = "auto"):
    """Merge affine-invariant depth maps into one, with the test-time ensembling of Marigold.

    Args:
        depths (`np.ndarray` or `torch.Tensor`):
            The members, ``E x H x W`` or ``E x 1 x H x W``, values in [0, 1].
        reduction (`str`, defaults to `"median"`):
            Pixel-wise merge of the aligned members: `"median"` (lower middle value for even E,
            as torch and diffusers) or `"mean"`.
        regularizer_strength (`float`, defaults to 0.02):
            Weight λ of the term pulling the merged map to span [0, 1].
        max_iter (`int`, defaults to 2):
            BFGS iterations (`scipy.optimize.minimize`, ``options["maxiter"]``); 0 keeps the
            initial min/max normalisation of each member.
        tol (`float`, defaults to 1e-3):
            BFGS tolerance (``tol`` of `scipy.optimize.minimize`).
        max_res (`int` or `None`, defaults to 1024):
            The fit runs on a copy whose longer side is at most this (nearest-exact sampling);
            `None` fits at full resolution. The result is always at full resolution.
        output_uncertainty (`bool`, defaults to `True`):
            Also return the spread of the aligned members: the median absolute deviation for
            `"median"`, the standard deviation for `"mean"`, in the units of the merged map.
        cost (`str`, defaults to `"pairwise"`):
            `"pairwise"` sums one RMS per member pair (diffusers, current official code);
            `"joint"` takes one RMS over all pairs' differences (CVPR release).
        fit (`str`, defaults to `"shift"`):
            `"shift"` keeps each scale at ``1 / (max - min)`` and fits the shifts (what diffusers'
            and the official solver effectively do); `"scale_shift"` fits both (CVPR release;
            with many iterations Eq. 4 drives all scales towards 0, see the module docstring).
        engine (`str`, defaults to `"auto"`):
            Where the pixel work runs: `"numpy"` on the host, `"torch"` on the members' device,
            `"auto"` torch for tensors on a CUDA GPU (a GPU run keeps its members there) and
            numpy otherwise (numpy's partition beats torch.median on the CPU). Both give the
            same result up to float32 round-off in the reductions.

    Returns:
        `(depth, uncertainty)`: ``H x W`` maps of the input's kind (numpy float32 for numpy input,
        a tensor on the input's device otherwise); ``depth`` spans [0, 1]; ``uncertainty`` is
        `None` unless requested.

    Example:
        ```py
        >>> from marigold_bench.inference.ensemble import ENSEMBLING_PRESETS, ensemble_depth
        >>> depth, spread = ensemble_depth(members, **ENSEMBLING_PRESETS["official"])
        ```
    """
    _check_settings(dict(reduction=reduction, cost=cost, max_res=max_res, max_iter=max_iter, fit=fit))
    members, was_numpy = _as_members(depths)
    device, out_dtype = members.device, members.dtype
    members = members.float()
    engine = _engine(engine, members)
    s, t = fit_alignment(members, reduction, regularizer_strength, max_iter, tol, max_res, cost, fit, engine)
    if engine == "torch":
        merged, uncertainty = _merge_torch(members, s, t, reduction, output_uncertainty)
    else:
        merged, uncertainty = _merge_numpy(members.cpu().numpy(), s, t, reduction, output_uncertainty)
    if was_numpy:
        return _to_numpy(merged), (None if uncertainty is None else _to_numpy(uncertainty))

    def back(a):
        a = a if torch.is_tensor(a) else torch.from_numpy(np.ascontiguousarray(a))
        return a.to(device=device, dtype=out_dtype)

    return back(merged), (None if uncertainty is None else back(uncertainty))


def _to_numpy(a) -> np.ndarray:
    return (a.cpu().numpy() if torch.is_tensor(a) else a).astype(np.float32, copy=False)


def _merge_numpy(stack: np.ndarray, s, t, reduction: str, output_uncertainty: bool):
    """Aligned members merged pixel-wise and stretched to [0, 1], in numpy float32 (the same
    arithmetic as diffusers' torch float32 code; numpy's partition-based median is about twice
    as fast as torch.median on the CPU)."""
    aligned = stack * s.astype(np.float32)[:, None, None] + t.astype(np.float32)[:, None, None]
    if reduction == "median":
        merged = _lower_median(aligned)
    else:
        merged = aligned.mean(axis=0, dtype=np.float32)
    uncertainty = None
    if output_uncertainty:
        if reduction == "median":
            uncertainty = _lower_median(np.abs(aligned - merged))
        elif aligned.shape[0] > 1:
            uncertainty = aligned.std(axis=0, ddof=1, dtype=np.float32)
        else:
            uncertainty = np.zeros_like(merged)
    return _stretch(merged, uncertainty, float(merged.min()), float(merged.max()))


def _merge_torch(members: torch.Tensor, s, t, reduction: str, output_uncertainty: bool):
    """`_merge_numpy` with torch on the members' device (torch.median is the lower median too)."""
    device = members.device
    s32 = torch.from_numpy(s.astype(np.float32)).to(device)[:, None, None]
    t32 = torch.from_numpy(t.astype(np.float32)).to(device)[:, None, None]
    aligned = members * s32 + t32
    merged = aligned.median(dim=0).values if reduction == "median" else aligned.mean(dim=0)
    uncertainty = None
    if output_uncertainty:
        if reduction == "median":
            uncertainty = (aligned - merged).abs().median(dim=0).values
        elif aligned.shape[0] > 1:
            uncertainty = aligned.std(dim=0, unbiased=True)
        else:
            uncertainty = torch.zeros_like(merged)
    lo, hi = torch.stack([merged.min(), merged.max()]).tolist()
    return _stretch(merged, uncertainty, lo, hi)


def _stretch(merged, uncertainty, lo: float, hi: float):
    """Merged map to [0, 1]; the spread in the same units. Scalars as float32, as diffusers."""
    lo32, span = np.float32(lo), np.float32(max(hi - lo, 1e-6))
    merged = (merged - lo32) / span
    return merged, (None if uncertainty is None else uncertainty / span)


def _lower_median(stack: np.ndarray) -> np.ndarray:
    """Median over the first axis; for an even count the lower middle value, as torch.median."""
    k = (stack.shape[0] - 1) // 2
    return np.partition(stack, k, axis=0)[k]


__all__ = ["ENSEMBLING_PRESETS", "resolve_ensembling", "ensemble_depth", "fit_alignment",
           "ensemble_objective", "initial_params"]
