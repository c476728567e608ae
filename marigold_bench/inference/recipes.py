"""Inference recipes of Marigold-family checkpoints: the settings a checkpoint was trained for.

* ``marigold``: the checkpoint's own defaults (``default_denoising_steps``, its scheduler's
  spacing), Gaussian starting noise, any ensemble size. Used for Marigold v1-0 / v1-1 and the
  LCM checkpoint (which brings its own ``LCMScheduler``).
* ``e2e-ft``: end-to-end fine-tuned checkpoints (Martin Garcia et al. 2024,
  "Fine-Tuning Image-Conditional Diffusion Models is Easier than You Think"): deterministic
  single-step models, run with one DDIM step at t = T (``trailing`` spacing) from an all-zero
  latent, ensemble size 1, as their authors prescribe.

A recipe fills in the settings left unset; an explicit setting that contradicts it is refused
rather than silently changed (run such a checkpoint with ``--recipe marigold`` to experiment).
"""

from __future__ import annotations

from ..errors import InferenceSettingsError

#: the fixed settings of each recipe (``None``: no constraint)
RECIPES: dict[str, dict] = {
    "marigold": {},
    "e2e-ft": {"steps": 1, "timestep_spacing": "trailing", "noise": "zeros", "ensemble": 1},
}

_FLAGS = {"steps": "--steps", "timestep_spacing": "--timestep-spacing", "noise": "--noise", "ensemble": "--ensemble"}


def resolve_recipe(recipe: str | None, *, steps=None, timestep_spacing=None, noise=None, ensemble=None) -> dict:
    """The settings ``recipe`` implies, merged with the explicit ones.

    Args:
        recipe: a key of `RECIPES`; ``None`` means ``"marigold"``.
        steps, timestep_spacing, noise, ensemble: what the caller set (``None``: unset; for
            ``ensemble`` 1 counts as unset too).

    Returns:
        `dict` with ``recipe``, ``steps``, ``timestep_spacing``, ``noise`` (``"gaussian"`` when
        nothing sets it) and ``ensemble``.

    Raises:
        InferenceSettingsError: unknown recipe, or a setting that contradicts it.
    """
    name = recipe or "marigold"
    if name not in RECIPES:
        raise InferenceSettingsError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    given = {"steps": steps, "timestep_spacing": timestep_spacing, "noise": noise,
             "ensemble": None if ensemble in (None, 1) else int(ensemble)}
    out = dict(given)
    for key, fixed in RECIPES[name].items():
        if given[key] is not None and given[key] != fixed:
            raise InferenceSettingsError(
                f"the {name} recipe runs {_FLAGS[key]} {fixed} (a deterministic one-step model); "
                f"{_FLAGS[key]} {given[key]} contradicts it. Drop the flag, or pass --recipe marigold to run "
                "the checkpoint with other settings.")
        out[key] = fixed
    if out["noise"] is None:
        out["noise"] = "gaussian"
    if out["ensemble"] is None:
        out["ensemble"] = 1
    return {"recipe": name, **out}


__all__ = ["RECIPES", "resolve_recipe"]
