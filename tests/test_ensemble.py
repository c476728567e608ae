"""Test-time ensembling: our vectorised objective against diffusers' own implementation."""

import numpy as np
import pytest
import scipy.optimize
import torch

from marigold_bench.inference.ensemble import (
    ENSEMBLING_PRESETS,
    ensemble_depth,
    ensemble_objective,
    fit_alignment,
    initial_params,
    resolve_ensembling,
)

diffusers = pytest.importorskip("diffusers")
from diffusers import MarigoldDepthPipeline  # noqa: E402


def _members(n=5, h=24, w=32, noise=0.03, seed=0, clip=True):
    """Members like a real ensemble: one scene under different scales/shifts plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = 0.3 + 0.5 * xx + 0.2 * np.sin(6 * yy)
    out = [base * rng.uniform(0.7, 1.0) + rng.uniform(0, 0.2) + noise * rng.standard_normal((h, w))
           for _ in range(n)]
    out = np.stack(out)
    return (np.clip(out, 0, 1) if clip else 0.05 + 0.7 * out).astype(np.float32)


def _diffusers_cost(members, solve=True, **kwargs):
    """diffusers' own objective, captured from inside its ensemble_depth, and its result.

    ``solve=False`` skips diffusers' solver (slow: finite differences) when only the objective
    function is wanted.
    """
    captured = {}
    real_minimize = scipy.optimize.minimize

    def spy(fun, x0, **kw):
        captured["fun"], captured["x0"] = fun, x0
        result = real_minimize(fun, x0, **kw) if solve else scipy.optimize.OptimizeResult(x=x0)
        captured["x"] = result.x
        return result

    scipy.optimize.minimize = spy
    try:
        depth, unc = MarigoldDepthPipeline.ensemble_depth(torch.from_numpy(members)[:, None],
                                                          output_uncertainty=True, **kwargs)
    finally:
        scipy.optimize.minimize = real_minimize
    return captured, depth[0, 0].numpy(), unc[0, 0].numpy()


@pytest.mark.parametrize("reduction", ["median", "mean"])
@pytest.mark.parametrize("n", [2, 4, 10])
def test_objective_equals_diffusers_cost(reduction, n):
    members = _members(n)
    captured, _, _ = _diffusers_cost(members, solve=False, reduction=reduction)
    rng = np.random.default_rng(1)
    x0 = captured["x0"]
    np.testing.assert_allclose(x0, initial_params(members), rtol=1e-6)
    for _ in range(5):
        x = x0 * (1 + 0.1 * rng.standard_normal(x0.shape)) + 0.02 * rng.standard_normal(x0.shape)
        ours, _ = ensemble_objective(members, x, reduction=reduction)
        assert ours == pytest.approx(captured["fun"](x), abs=1e-5)


def test_objective_on_downsized_copy_equals_diffusers():
    # diffusers fits on a nearest-exact copy whose long side is max_res; so must we.
    members = _members(4, 30, 50)
    captured, _, _ = _diffusers_cost(members, solve=False, max_res=16)
    from marigold_bench.inference.ensemble import _shrink_to

    copy = _shrink_to(torch.from_numpy(members), 16)
    assert tuple(copy.shape[-2:]) == (9, 16)
    x = captured["x0"] * 1.05
    assert ensemble_objective(copy, x)[0] == pytest.approx(captured["fun"](x), abs=1e-5)


@pytest.mark.parametrize("reduction", ["median", "mean"])
@pytest.mark.parametrize("cost", ["pairwise", "joint"])
def test_gradient_matches_finite_differences(reduction, cost):
    # Unclipped: clipped members tie at their minimum, where the objective has a kink.
    members = _members(6, clip=False).astype(np.float64)
    # Away from the initial point, where every member spans exactly [0, 1] and the members tie
    # at the extreme pixels (a kink of the median).
    rng = np.random.default_rng(2)
    x = initial_params(members) * (1 + 0.1 * rng.standard_normal(12)) + 0.05 * rng.standard_normal(12)
    value, grad = ensemble_objective(members, x, reduction=reduction, cost=cost)
    eps = 1e-6
    numeric = np.array([(ensemble_objective(members, x + eps * e, reduction=reduction, cost=cost)[0]
                         - ensemble_objective(members, x - eps * e, reduction=reduction, cost=cost)[0]) / (2 * eps)
                        for e in np.eye(len(x))])
    # The regulariser is evaluated in float32 (as the reference), which limits the FD accuracy.
    np.testing.assert_allclose(grad, numeric, atol=5e-3 * max(1.0, np.abs(grad).max()))


def test_joint_cost_is_one_rms_over_all_pairs():
    members = _members(4)
    x = initial_params(members)
    s, t = x[:4, None, None], x[4:, None, None]
    aligned = members * s + t
    diffs = np.stack([aligned[i] - aligned[j] for i in range(4) for j in range(i + 1, 4)])
    merged = torch.from_numpy(aligned).median(0).values.numpy()
    expected = np.sqrt(np.mean(diffs.astype(np.float64) ** 2)) + 0.02 * (abs(merged.min()) + abs(1 - merged.max()))
    assert ensemble_objective(members, x, cost="joint")[0] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("reduction", ["median", "mean"])
def test_same_result_as_diffusers_when_fit_is_fixed(reduction):
    # With no solver steps both keep the initial alignment: everything after it (reduction,
    # uncertainty, normalisation) must match diffusers exactly.
    members = _members(5)
    _, ref, ref_unc = _diffusers_cost(members, reduction=reduction, max_iter=0)
    depth, unc = ensemble_depth(members, reduction=reduction, max_iter=0)
    np.testing.assert_allclose(depth, ref, atol=1e-5)
    np.testing.assert_allclose(unc, ref_unc, atol=1e-5)


def _reference_cost(members, s, t, reduction="median", strength=0.02):
    """Eq. 4 written out in float64, independently of both implementations: one RMS per pair of
    aligned members plus the range regulariser on their pixel-wise median (torch's median, the
    lower middle value, equals numpy's for an odd member count) or mean."""
    a = members.astype(np.float64) * s[:, None, None] + t[:, None, None]
    pairs = sum(np.sqrt(np.mean((a[i] - a[j]) ** 2)) for i in range(len(a)) for j in range(i + 1, len(a)))
    merged = np.median(a, axis=0) if reduction == "median" else a.mean(axis=0)
    return pairs + strength * (abs(merged.min()) + abs(1.0 - merged.max()))


@pytest.mark.parametrize("reduction", ["median", "mean"])
def test_converged_fit_reaches_the_optimum_of_an_independent_float64_solve(reduction):
    """A real solver run (not max_iter=0). The reference: the objective above minimised over the
    shifts (the scales held at their start, as the presets' fit="shift" and diffusers' own solver
    do) by derivative-free Nelder-Mead in float64. Ours, with its exact gradient, must reach the
    same cost and the same relative shifts (a common shift is free while the merged range stays
    inside [0, 1], so only differences are compared); and must do no worse than diffusers' own
    solver, which does move its shifts here."""
    members = _members(5, 24, 32, noise=0.05, seed=3, clip=False)
    captured, _, _ = _diffusers_cost(members, reduction=reduction, max_iter=50, tol=1e-6, max_res=None)
    x0 = captured["x0"]
    scales, start = x0[:5], x0[5:]
    # the reference objective is diffusers' own (to float32 round-off), checked at two points
    for x in (x0, np.concatenate([scales, start + np.array([0.03, -0.02, 0.0, 0.01, 0.05])])):
        assert _reference_cost(members, x[:5], x[5:], reduction) == pytest.approx(captured["fun"](x), abs=1e-5)
    reference = scipy.optimize.minimize(lambda t: _reference_cost(members, scales, t, reduction), start,
                                        method="Nelder-Mead",
                                        options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 40000, "maxfev": 40000})
    best = reference.fun
    assert best < _reference_cost(members, scales, start, reduction) - 1e-3  # the fit has work to do
    s, t = fit_alignment(members, reduction=reduction, max_iter=200, tol=1e-10, max_res=None, fit="shift")
    np.testing.assert_array_equal(s, scales)
    ours = _reference_cost(members, s, t, reduction)
    assert ours <= best + 1e-7 and ours >= best - 1e-5, (ours, best)
    np.testing.assert_allclose(t - t[0], reference.x - reference.x[0], atol=2e-3)
    assert np.abs(captured["x"][5:] - start).max() > 1e-4  # diffusers' solver did move
    assert ours <= _reference_cost(members, captured["x"][:5], captured["x"][5:], reduction) + 1e-7


def test_exact_affine_copies_agree_with_diffusers():
    base = _members(1, noise=0.0)[0]
    members = np.stack([base * s + t for s, t in [(1.0, 0.0), (0.5, 0.2), (0.8, 0.1), (0.3, 0.6)]]).astype(np.float32)
    _, ref, _ = _diffusers_cost(members)
    expected = (base - base.min()) / (base.max() - base.min())
    for preset in ENSEMBLING_PRESETS.values():
        depth, unc = ensemble_depth(members, **preset)
        np.testing.assert_allclose(depth, expected, atol=1e-4)
        assert np.abs(unc).max() < 1e-4
    np.testing.assert_allclose(ref, expected, atol=1e-4)


def test_lower_cost_than_diffusers_at_convergence():
    # diffusers' finite differences see float32 round-off (its scale gradient is exactly 0, so its
    # scales never move); over the same parameters, exact gradients must reach at least as low a
    # cost once both have converged (the official preset: 50 iterations, tol 1e-6).
    members = _members(6, 32, 40)
    settings = {k: v for k, v in ENSEMBLING_PRESETS["official"].items() if k not in ("cost", "fit")}
    captured, _, _ = _diffusers_cost(members, **settings)
    np.testing.assert_array_equal(captured["x"][:6], captured["x0"][:6])
    s, t = fit_alignment(members, **ENSEMBLING_PRESETS["official"])
    np.testing.assert_array_equal(s, captured["x0"][:6])
    assert captured["fun"](np.concatenate([s, t])) <= captured["fun"](captured["x"]) + 1e-6


def test_literal_eq4_collapses_and_presets_do_not():
    # Eq. 4 is minimised by shrinking every scale to 0; "shift" fitting (the presets) avoids it.
    members = _members(6, 32, 40, seed=4)
    base = _members(1, 32, 40, noise=0.0, seed=4, clip=False)[0]
    target = (base - base.min()) / (base.max() - base.min())
    s, _ = fit_alignment(members, max_iter=50, tol=1e-6, fit="scale_shift")
    assert np.abs(s).max() < 0.1 * initial_params(members)[:6].min()
    depth, _ = ensemble_depth(members, **ENSEMBLING_PRESETS["official"])
    assert np.sqrt(np.mean((depth - target) ** 2)) < 0.06


def test_all_members_equal_returns_the_member():
    member = _members(1)[0]
    member = (member - member.min()) / (member.max() - member.min())   # spans [0, 1]
    for reduction in ("median", "mean"):
        for preset in ("diffusers", "official", "cvpr"):
            settings = {**ENSEMBLING_PRESETS[preset], "reduction": reduction}
            depth, unc = ensemble_depth(np.stack([member] * 4), **settings)
            np.testing.assert_allclose(depth, member, atol=1e-6)
            np.testing.assert_allclose(unc, 0.0, atol=1e-6)
    # A member not spanning [0, 1] comes back stretched to it.
    squeezed = 0.2 + 0.5 * member
    depth, _ = ensemble_depth(np.stack([squeezed] * 3))
    np.testing.assert_allclose(depth, member, atol=1e-5)


def test_input_kinds_and_shapes():
    members = _members(3)
    d_np, u_np = ensemble_depth(members)
    assert isinstance(d_np, np.ndarray) and d_np.dtype == np.float32 and d_np.shape == (24, 32)
    assert d_np.min() == pytest.approx(0.0) and d_np.max() == pytest.approx(1.0)
    d_t, u_t = ensemble_depth(torch.from_numpy(members)[:, None])
    assert torch.is_tensor(d_t) and tuple(d_t.shape) == (24, 32)
    np.testing.assert_allclose(d_t.numpy(), d_np, atol=1e-6)
    assert ensemble_depth(members, output_uncertainty=False)[1] is None
    single, unc = ensemble_depth(members[:1])
    assert single.shape == (24, 32) and np.all(unc == 0)
    with pytest.raises(ValueError):
        ensemble_depth(members, reduction="mode")
    with pytest.raises(ValueError):
        ensemble_depth(members[0])


def test_presets_resolve_and_record():
    assert resolve_ensembling("diffusers") == {"preset": "diffusers", **ENSEMBLING_PRESETS["diffusers"]}
    assert resolve_ensembling(None)["preset"] == "diffusers"
    official = resolve_ensembling("official")
    assert (official["max_iter"], official["tol"], official["max_res"]) == (50, 1e-6, 1024)
    cvpr = resolve_ensembling("cvpr")
    assert cvpr["cost"] == "joint" and cvpr["max_res"] is None and cvpr["fit"] == "scale_shift"
    assert official["fit"] == "shift"
    assert resolve_ensembling("official-2024")["max_res"] == 50
    custom = resolve_ensembling({"preset": "official", "reduction": "mean"})
    assert custom["preset"] == "official+custom" and custom["reduction"] == "mean"
    with pytest.raises(ValueError):
        resolve_ensembling("nope")
    with pytest.raises(ValueError):
        resolve_ensembling({"max_iters": 3})


def _objective_calls(run) -> int:
    """How many times the objective handed to `scipy.optimize.minimize` is evaluated in ``run()``."""
    calls = 0
    real_minimize = scipy.optimize.minimize

    def counting(fun, x0, **kw):
        def counted(x, *args):
            nonlocal calls
            calls += 1
            return fun(x, *args)
        return real_minimize(counted, x0, **kw)

    scipy.optimize.minimize = counting
    try:
        run()
    finally:
        scipy.optimize.minimize = real_minimize
    return calls


def test_ten_times_fewer_objective_evaluations_than_diffusers_at_n10():
    # why ours is faster, without a clock (the speed itself is benchmarks/inference.py's to
    # measure): the gradient is analytic, so one evaluation gives it, where diffusers' BFGS
    # estimates it by finite differences, one extra evaluation per parameter (2N = 20 at N=10)
    members = _members(10, seed=3)
    ours = _objective_calls(lambda: ensemble_depth(members))
    theirs = _objective_calls(lambda: MarigoldDepthPipeline.ensemble_depth(torch.from_numpy(members)[:, None],
                                                                           output_uncertainty=True))
    assert ours >= 1 and theirs >= 10 * ours, f"ours {ours} evaluations, diffusers {theirs}"


ENGINE_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", ENGINE_DEVICES)
@pytest.mark.parametrize("reduction", ["median", "mean"])
@pytest.mark.parametrize("n", [2, 5, 10])
def test_torch_engine_objective_equals_numpy(device, reduction, n):
    # the regulariser evaluated on the members' device against the host's partition
    members = _members(n, seed=n)
    x = initial_params(members) * np.random.default_rng(n).uniform(0.9, 1.1, 2 * n)
    value_np, grad_np = ensemble_objective(members, x, reduction=reduction, engine="numpy")
    value_t, grad_t = ensemble_objective(torch.from_numpy(members).to(device), x, reduction=reduction,
                                         engine="torch")
    assert value_t == pytest.approx(value_np, rel=1e-6)
    np.testing.assert_allclose(grad_t, grad_np, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("device", ENGINE_DEVICES)
@pytest.mark.parametrize("preset", sorted(ENSEMBLING_PRESETS))
def test_torch_engine_ensembles_like_numpy(device, preset):
    members = _members(10, h=60, w=80, seed=3)
    settings = ENSEMBLING_PRESETS[preset]
    d_np, u_np = ensemble_depth(members, **settings, engine="numpy")
    d_t, u_t = ensemble_depth(torch.from_numpy(members).to(device), **settings, engine="torch")
    assert d_t.device.type == device               # results stay where the members were
    np.testing.assert_allclose(d_t.cpu().numpy(), d_np, atol=1e-5)
    np.testing.assert_allclose(u_t.cpu().numpy(), u_np, atol=1e-5)
    # and the mean reduction, whose float32 sums run in another order
    d_np, u_np = ensemble_depth(members, **{**settings, "reduction": "mean"}, engine="numpy")
    d_t, u_t = ensemble_depth(torch.from_numpy(members).to(device), **{**settings, "reduction": "mean"},
                              engine="torch")
    np.testing.assert_allclose(d_t.cpu().numpy(), d_np, atol=1e-5)
    np.testing.assert_allclose(u_t.cpu().numpy(), u_np, atol=1e-5)


def test_engine_choice():
    members = _members(3)
    with pytest.raises(ValueError, match="engine"):
        ensemble_depth(members, engine="cupy")
    # numpy input with the torch engine still returns numpy
    depth, _ = ensemble_depth(members, engine="torch")
    assert isinstance(depth, np.ndarray) and depth.dtype == np.float32
