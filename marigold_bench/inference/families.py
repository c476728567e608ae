"""Model families: what kind of model a ``--model`` is, which settings it takes, how it is built.

A family is one object (a `Family`) that declares everything the commands need to know about a
kind of model, so that no command compares family names:

* `Family.claims`: whether a ``--model`` is one of its models, by name (``baseline:ramp``) or
  from the files of the folder it resolves to (a Marigold ``model_index.json``, a transformers
  ``config.json`` with its image processor);
* `Family.settings`: the settings keys (``--steps`` -> ``"steps"``) it honours; `Family.check`
  refuses the others when the user set them, `Family.drop` leaves them out (``leaderboard``);
* `Family.build`: the `Predictor` for a model and the settings;
* `Family.output_space` and `Family.value_range`: what its numbers mean and where they lie, as
  far as the family knows before a model is loaded (a predictor may refine the space).

The registry maps names to families: the built-ins (`BUILT_IN`, ``name -> "module:FAMILY"``,
imported on first use) and the families that plugins provide
(`marigold_bench.plugins.discover`: entry-point group ``marigold_bench.families``, or a
``FAMILY`` in an ``--include`` spec file). `family_for` asks the families in turn: those that
claim a model by its name first (a prefix such as ``baseline:``), then, once the model is found
on disk, those that recognise its files. A folder no family claims is a `CheckpointError`
naming the families tried; it is never handed to a family that merely comes first.

Example, a whole family in a spec file (``--include DIR``, file ``DIR/plane.py``):

    ```py
    from marigold_bench.inference.families import Family

    class PlaneFamily(Family):
        name = "plane"
        description = "a constant plane (a test-only family)"
        prefix = "plane"
        value_range = None

        def build(self, model, settings):
            return PlanePredictor(float(model.split(":", 1)[1]), settings.get("ensemble", 1))

    FAMILY = PlaneFamily()
    ```
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any, Mapping

from ..errors import CheckpointError, InferenceSettingsError
from ..output_spaces import DEPTH_AFFINE
from ..plugins import PluginWarning, discover, included_folders

#: settings every family takes: how many members, their seed, where and in which batches the
#: model runs, and what its numbers mean (an ``--output-space`` override is the scorer's)
COMMON_SETTINGS = ("ensemble", "seed", "device", "batch_size", "output_space")

#: the built-in families, in the order they are asked: name -> "module:attribute"
BUILT_IN = {
    "baseline": "marigold_bench.inference.baseline:FAMILY",
    "marigold": "marigold_bench.inference.marigold_family:FAMILY",
    "marigold-normals": "marigold_bench.inference.marigold_normals_family:FAMILY",
    "transformers": "marigold_bench.inference.transformers_family:FAMILY",
    "moge": "marigold_bench.inference.moge_family:FAMILY",
}


def flag_text(key: str, value: Any) -> str:
    """A setting as the user wrote it on the command line: ``("steps", 4)`` -> ``"--steps 4"``,
    a switch (``True``) as the bare flag."""
    flag = "--" + key.replace("_", "-")
    return flag if value is True else f"{flag} {value}"


class Family:
    """One kind of model: how it is recognised, which settings it honours, how it is built.

    Subclass it and set the class attributes; override `claims` (or set `prefix`) and `build`.
    The registry records where a family came from in `origin`.
    """

    #: the family's name, as ``settings["family"]`` records it and listings show it
    name: str = ""
    #: what its models are, in a phrase that reads after "--model X is ..." in messages
    description: str = ""
    #: the settings keys it honours (`COMMON_SETTINGS` plus its own); others are refused
    settings: tuple[str, ...] = COMMON_SETTINGS
    #: ``--model <prefix>:...`` names one of its models (claimed before any file is read)
    prefix: str | None = None
    #: what its numbers mean (`marigold_bench.output_spaces`); None: it depends on the model
    output_space: str | None = DEPTH_AFFINE
    #: ``(low, high)`` its predictions lie in; None: any range (shown min-max normalised)
    value_range: tuple[float, float] | None = None
    #: "built-in", or where a plugin family came from (set by the registry)
    origin: str = "built-in"

    # ------------------------------------------------------------------ recognising

    def claims(self, model: str, path: Path | None) -> bool:
        """Whether ``model`` is one of this family's models.

        Args:
            model: what ``--model`` said.
            path: the folder it resolves to, or None while the registry asks by name alone
                (a family that recognises files answers False then).
        """
        return self.prefix is not None and path is None and str(model).startswith(self.prefix + ":")

    # ------------------------------------------------------------------ settings

    def unhonoured(self, settings: Mapping[str, Any]) -> list[str]:
        """The keys of ``settings`` this family cannot honour, in their order."""
        return [key for key in settings if key not in self.settings]

    def check(self, settings: Mapping[str, Any], model: str | None = None) -> None:
        """Refuse settings the user set that this family cannot honour, instead of ignoring them.

        Args:
            settings: what the user set (`marigold_bench.commands.common.settings_from_args`).
            model: the ``--model`` named in the message.

        Raises:
            InferenceSettingsError: naming each such setting as it was written (``--steps 4``).
        """
        found = [flag_text(key, settings[key]) for key in self.unhonoured(settings)]
        if found:
            raise InferenceSettingsError(f"--model {model or '?'} is {self.description}: {', '.join(found)} cannot "
                                         "apply to it; drop the flag(s)")

    def drop(self, settings: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """``settings`` without what this family cannot honour, and those as written.

        For commands that run several families under one set of flags (``leaderboard``): a
        setting one family cannot take is reported and left out for its models, not refused.
        """
        dropped = self.unhonoured(settings)
        return ({k: v for k, v in settings.items() if k not in dropped},
                [flag_text(k, settings[k]) for k in dropped])

    # ------------------------------------------------------------------ building

    def build(self, model: str, settings: Mapping[str, Any]):
        """The `Predictor` for ``model`` with ``settings`` (only keys this family honours;
        unset ones take the family's defaults).

        Raises:
            CheckpointError: the model cannot be found or loaded.
            InferenceSettingsError: an invalid setting.
        """
        raise NotImplementedError(f"family {self.name!r} does not say how to build its models")

    def example(self, folder: Path) -> str | None:
        """A ``--model`` value naming a tiny model of this family, written under ``folder`` if
        it needs files; None when the family offers none. The Predictor contract test
        (``tests/test_families.py``) runs every family through it; a plugin family that
        provides one is checked too."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.origin})>"


# ---------------------------------------------------------------------------- the registry

#: the registry as found, and the ``--include`` folders it was found with
_FAMILIES: tuple[tuple, dict[str, Family]] | None = None


def _load_built_in(name: str, target: str) -> Family:
    module, _, attr = target.partition(":")
    family = getattr(importlib.import_module(module), attr)
    family.origin = "built-in"
    return family


def _registry() -> dict[str, Family]:
    """Built-ins, then the plugin families (checked, and never shadowing a built-in)."""
    global _FAMILIES
    key = tuple(included_folders())   # an --include given later adds its spec files
    if _FAMILIES is not None and _FAMILIES[0] == key:
        return _FAMILIES[1]
    families = {name: _load_built_in(name, target) for name, target in BUILT_IN.items()}
    for found in discover("families"):
        family = found.obj
        if isinstance(family, type) and issubclass(family, Family):
            family = family()   # a spec file may name the class itself
        if not isinstance(family, Family):
            warnings.warn(f"{found.origin}: provides a {type(family).__name__}, not a marigold_bench Family; "
                          "left out", PluginWarning, stacklevel=3)
            continue
        if not family.name:
            warnings.warn(f"{found.origin}: the family has no name; left out", PluginWarning, stacklevel=3)
            continue
        if family.name in families:
            warnings.warn(f"{found.origin}: a family named {family.name!r} exists already "
                          f"({families[family.name].origin}); the plugin's is left out", PluginWarning, stacklevel=3)
            continue
        family.origin = found.origin
        families[family.name] = family
    _FAMILIES = (key, families)
    return families


def reset_registry() -> None:
    """Forget the families found so far (after ``--include`` adds spec files; tests)."""
    global _FAMILIES
    _FAMILIES = None


def all_families() -> list[Family]:
    """Every registered family: the built-ins first, then plugins, each in the order found."""
    return list(_registry().values())


def family_names() -> list[str]:
    """The names of `all_families`."""
    return list(_registry())


def get_family(name: str) -> Family:
    """The family called ``name``.

    Raises:
        InferenceSettingsError: an unknown name, listing the known ones.
    """
    families = _registry()
    if name not in families:
        raise InferenceSettingsError(f"unknown model family {name!r}; known: {', '.join(families)}")
    return families[name]


def family_for(model: str) -> Family:
    """The family whose model ``--model model`` is.

    First the families that claim it by name (``baseline:ramp``); else ``model`` is found on
    disk (a folder, a bundled checkpoint, a registry name or a hub id in the local cache) and
    the families that recognise its files are asked, built-ins first.

    Raises:
        CheckpointError: the model cannot be found (the message says how to fetch a hub id), or
        no family recognises what it is, naming the families tried and what the folder holds.
    """
    families = all_families()
    for family in families:
        if family.claims(model, None):
            return family
    try:
        path = model_path(model)
    except CheckpointError as exc:
        prefixes = [f"{f.prefix}:..." for f in families if f.prefix]
        head = str(model).partition(":")[0]
        if ":" in str(model) and "/" not in head and "\\" not in head and prefixes:
            # "baselin:ramp": a name meant for a family, not a folder
            raise CheckpointError(f"{exc}; model names families claim: {', '.join(prefixes)}") from None
        raise
    for family in families:
        if family.claims(model, path):
            return family
    from ..model.load import why_unrecognised

    tried = ", ".join(f.name for f in families)
    raise CheckpointError(f"no model family recognises --model {model} (tried: {tried}): {why_unrecognised(path)}")


def model_path(model: str) -> Path:
    """The folder ``--model model`` names: a folder, a bundled checkpoint, a registry name's or a
    hub id's snapshot in the local Hugging Face cache (never downloaded).

    Raises:
        CheckpointError: it is none of these; for a hub id the message says how to fetch it.
    """
    from ..model.load import resolve_checkpoint
    from .registry import resolve_name

    return resolve_checkpoint(resolve_name(model))[0]


__all__ = ["Family", "COMMON_SETTINGS", "BUILT_IN", "flag_text", "all_families", "family_names", "get_family",
           "family_for", "model_path", "reset_registry"]
