"""The words every layer shares about what is measured: tasks and their metrics.

Each metric is written once, as a :class:`MetricSpec`: its key (the ``per_sample.csv`` column and
``summary.json["metrics"]`` key), its title, its direction, how tables display it (×100 for
fractions papers print in percent), which evaluation protocols define it and what it is. Tables,
leaderboards, ``regress`` and ``compare`` read these instead of keeping their own lists, so a
new metric (surface normals' angular errors, point-map errors) is one entry here.

Bottom layer: no numpy, no torch, nothing of the package above it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

#: tasks the suite evaluates (``summary.json["task"]``); normals come with 0.4's normals issue
TASKS = ("depth", "normals")

#: the protocols of the package that compute the full Marigold metric set, and MoGe's two
_MARIGOLD = ("marigold",)
_BOTH = ("marigold", "moge")


@dataclass(frozen=True)
class MetricSpec:
    """One metric: what it is called, which way is better and how tables show it.

    Attributes:
        key: the column key (``abs_rel``).
        title: the column title without its arrow (``AbsRel``, ``δ1``).
        lower_is_better: errors go down; accuracies (δ, F1) go up.
        percent: tables print the value ×100 (the fractions papers print in percent).
        protocols: the evaluation protocols of the package whose scorer defines it (a plugin
            protocol may define it too; this is what the package ships).
        description: one line: what is computed.
        task: the task it measures (``depth``; ``normals`` later).
        latex: the LaTeX title without its arrow (default: ``title`` with ``_`` escaped).
        where_defined: averaged over the samples that have a value (NaN where a sample has
            none: MoGe's ``key_average``), not over every scored sample.
    """

    key: str
    title: str
    lower_is_better: bool
    percent: bool
    protocols: tuple
    description: str
    task: str = "depth"
    latex: str = ""
    where_defined: bool = False

    @property
    def higher_is_better(self) -> bool:
        return not self.lower_is_better

    @property
    def arrow(self) -> str:
        """``↓`` for errors, ``↑`` for accuracies."""
        return "↓" if self.lower_is_better else "↑"

    @property
    def display_scale(self) -> float:
        """What tables multiply a value by: 100 for percentages, else 1."""
        return 100.0 if self.percent else 1.0

    def heading(self, latex: bool = False) -> str:
        """The column title with its arrow: ``AbsRel↓``, or (LaTeX) ``$\\delta_1\\uparrow$``."""
        if not latex:
            return self.title + self.arrow
        arrow = r"\downarrow" if self.lower_is_better else r"\uparrow"
        text = self.latex or self.title.replace("_", r"\_")
        if text.endswith("$"):  # the arrow goes inside the closing math
            return text[:-1] + arrow + "$"
        return text + f"${arrow}$"


def _delta(n: int) -> MetricSpec:
    return MetricSpec(f"delta{n}", f"δ{n}", False, True, _BOTH if n == 1 else _MARIGOLD,
                      f"fraction of pixels with max(p/g, g/p) < 1.25^{n}", latex=rf"$\delta_{n}$")


#: every metric by key, in the order of the ``per_sample.csv`` columns
METRICS: dict[str, MetricSpec] = {m.key: m for m in (
    MetricSpec("abs_rel", "AbsRel", True, True, _BOTH, "mean |p - g| / g (MoGe: / (g + 1e-6))"),
    MetricSpec("sq_rel", "SqRel", True, False, _MARIGOLD, "mean (p - g)^2 / g"),
    MetricSpec("rmse", "RMSE", True, False, _MARIGOLD, "sqrt mean (p - g)^2, metres"),
    MetricSpec("rmse_log", "RMSElog", True, False, _MARIGOLD, "sqrt mean (ln p - ln g)^2"),
    MetricSpec("log10", "log10", True, False, _MARIGOLD, "mean |log10 p - log10 g|"),
    _delta(1), _delta(2), _delta(3),
    MetricSpec("i_rmse", "iRMSE", True, False, _MARIGOLD, "sqrt mean (1/p - 1/g)^2, 1/metres"),
    MetricSpec("silog_rmse", "SIlog", True, False, _MARIGOLD,
               "scale-invariant log RMSE x100 (Eigen et al.)"),
    MetricSpec("boundary_f1", "BoundaryF1", False, False, _BOTH,
               "F1 of depth edges at a pixel radius (MoGe's boundary metric; --boundary-f1 R)",
               latex=r"F1$_\mathrm{b}$"),
    *(MetricSpec(f"{kind}_{of}", f"{kind.upper()} {title}", kind == "ause", False, _BOTH,
                 f"{'area under the sparsification error' if kind == 'ause' else 'area under the random gain'} "
                 f"of {title} (the ensemble spread ranking pixels; --uncertainty)")
      for of, title in (("abs_rel", "AbsRel"), ("rmse", "RMSE"), ("delta1_outliers", "δ1-outliers"))
      for kind in ("ause", "aurg")),
)}


# --- the metric-depth leaderboards' protocols (zoedepth, unidepth, monodepth2) -----------------

#: the metric columns each metric-depth protocol reports, beyond those above it shares
_METRIC_BOARDS = {
    "zoedepth": ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3", "silog_rmse",
                 "delta_103"),
    "unidepth": ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3", "silog_std",
                 "medianlog", "d_auc", "delta_103", "d1_ssi"),
    "monodepth2": ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3"),
}

METRICS.update({m.key: m for m in (
    MetricSpec("silog_std", "SIlog", True, False, ("unidepth",),
               "100 x std(ln p - ln g) with Bessel's correction (UniDepth's silog)", latex="SI$_\\log$"),
    MetricSpec("medianlog", "MedianLog", True, False, ("unidepth",),
               "100 x |median(ln p - ln g)|, the lower middle value for an even count (torch's median)"),
    MetricSpec("d_auc", "δAUC", False, True, ("unidepth",),
               "area under δ(1.25^x) for x in linspace(0.01, 5, 100), / 5 (UniDepth)", latex=r"$\delta_\mathrm{AUC}$"),
    MetricSpec("delta_103", "δ1.03", False, True, ("unidepth", "zoedepth"),
               "fraction of pixels with max(p/g, g/p) < 1.03 (UniDepth's tau; DA3's δ at 1.03)",
               latex=r"$\delta_{1.03}$"),
    MetricSpec("d1_ssi", "δ1 SSI", False, True, ("unidepth",),
               "δ1 after a least-squares scale and shift of the prediction (UniDepth's d1_ssi)",
               latex=r"$\delta_1^\mathrm{SSI}$"),
)})

# --- MoGe's point-map columns (eval/protocols/moge.py; a point output space) ------------------

_POINT_ALIGNMENT = {"metric": "an xyz shift", "scale": "one scale", "affine": "a scale and an xyz shift"}

METRICS.update({m.key: m for m in (
    *(m for word, fit in _POINT_ALIGNMENT.items() for m in (
        MetricSpec(f"rel_point_{word}", f"RelP {word}", True, True, ("moge",),
                   f"mean ‖p - g‖ / ‖g‖ after {fit} (MoGe's rel of points_"
                   f"{'metric' if word == 'metric' else word + '_invariant'}); missing intrinsics: not scored",
                   latex=rf"Rel$^\mathrm{{p}}_\mathrm{{{word}}}$", where_defined=True),
        MetricSpec(f"delta1_point_{word}", f"δ1P {word}", False, True, ("moge",),
                   f"fraction of pixels with ‖p - g‖ < 0.25 min(‖g‖, ‖p‖) after {fit} (MoGe's δ1 of points)",
                   latex=rf"$\delta_1^\mathrm{{p}}$ {word}", where_defined=True))),
    MetricSpec("rel_local", "RelLocal", True, True, ("moge",),
               "MoGe's local points: per segment a scale and xyz shift, mean ‖p - g‖ / diameter, "
               "mean over segments (samples without a scored segment left out)", where_defined=True),
    MetricSpec("delta1_local", "δ1Local", False, True, ("moge",),
               "MoGe's local points: per segment the fraction with ‖p - g‖ < 0.25 diameter", where_defined=True),
    MetricSpec("fov_x_mae", "FoVx err", True, False, ("moge",),
               "|predicted - true| horizontal field of view in degrees, the focal read off the points "
               "as MoGe's models do (shift 0)", where_defined=True),
    MetricSpec("fov_x_deviation", "FoVx dev", True, False, ("moge",),
               "predicted - true horizontal field of view in degrees (signed: a bias, not an error)",
               where_defined=True),
)})

# moge-lifted (eval/protocols/moge_lifted.py): moge's depth columns and the point columns of a
# depth model's lift with the true intrinsics (no fov_x: the true focal is used)
for _key in ("abs_rel", "delta1", "boundary_f1", *(k for k in METRICS if "_point_" in k or k.endswith("_local"))):
    METRICS[_key] = dataclasses.replace(METRICS[_key], protocols=METRICS[_key].protocols + ("moge-lifted",))

# --- DA-2K's pair order (eval/protocols/da2k.py); never a dense-depth column -------------------

#: DA-2K's eight scene types (its paper), each a ``pair_acc_<scene>`` column
DA2K_SCENES = ("indoor", "outdoor", "non_real", "transparent_reflective", "adverse_style", "aerial", "underwater",
               "object")

METRICS.update({m.key: m for m in (
    MetricSpec("pair_acc", "PairAcc", False, True, ("da2k",),
               "share of DA-2K's annotated pairs ordered right (over pairs; disparity: larger is closer)"),
    *(MetricSpec(f"pair_acc_{scene}", f"PairAcc {scene}", False, True, ("da2k",),
                 f"pair accuracy over the {scene} scenes of DA-2K") for scene in DA2K_SCENES),
)})

for _protocol, _keys in _METRIC_BOARDS.items():
    for _key in _keys:
        if _protocol not in METRICS[_key].protocols:
            METRICS[_key] = dataclasses.replace(METRICS[_key], protocols=METRICS[_key].protocols + (_protocol,))


# --- surface normals (eval/normals.py): angles in degrees, shares already in percent -------------

_NORMALS = ("marigold", "dsine")

METRICS.update({m.key: m for m in (
    MetricSpec("mean_angle", "mean", True, False, _NORMALS, "mean angular error, degrees", task="normals"),
    MetricSpec("median_angle", "median", True, False, _NORMALS, "median angular error, degrees", task="normals"),
    *(MetricSpec(f"pct_{text.replace('.', '_')}", f"%<{text}", False, False, _NORMALS,
                 f"percentage of pixels with an angular error under {text} degrees", task="normals",
                 latex=f"\\%$<${text}")
      for text in ("5", "7.5", "11.25", "22.5", "30")),
    MetricSpec("rmse_angle", "RMSE°", True, False, ("dsine",), "root mean square angular error, degrees",
               task="normals", latex="RMSE$^\\circ$"),
)})

#: the columns tables show by default, per task (normals: issue 19's mean, median, <11.25, <30)
DEFAULT_COLUMNS = {"normals": ("mean_angle", "median_angle", "pct_11_25", "pct_30")}


def metrics_of_task(task: str) -> list[str]:
    """Every metric key measuring ``task``, in :data:`METRICS` order."""
    return [key for key, spec in METRICS.items() if spec.task == task]


def task_of_metrics(keys) -> str:
    """The task a run's metric keys measure: ``normals`` when any is a normals metric, else depth."""
    return "normals" if any(METRICS.get(k) and METRICS[k].task == "normals" for k in keys) else "depth"


def metric_spec(key: str) -> MetricSpec | None:
    """The spec of ``key``; None for a key the suite does not know (shown as it is)."""
    return METRICS.get(key)


def metric_heading(key: str, latex: bool = False) -> str:
    """A column title with its arrow; an unknown key is shown as it is, as an error (``↓``)."""
    spec = METRICS.get(key) or MetricSpec(key, key, True, False, (), "")
    return spec.heading(latex)


def display_value(key: str, value: float) -> float:
    """A metric in the unit tables print: ×100 for percentages, else as it is."""
    spec = METRICS.get(key)
    return value * spec.display_scale if spec else value


def higher_is_better(key: str) -> bool:
    """Whether a larger value of ``key`` is better (unknown keys: errors, lower is better)."""
    spec = METRICS.get(key)
    return bool(spec and spec.higher_is_better)


__all__ = ["DEFAULT_COLUMNS", "METRICS", "MetricSpec", "TASKS", "display_value", "higher_is_better",
           "metric_heading", "metric_spec", "metrics_of_task", "task_of_metrics"]
