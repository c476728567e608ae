"""Where a model runs and in which precision: one answer for every adapter.

Every family that runs a torch model (Marigold, transformers, a plugin's) resolves ``--device``
and ``--precision`` here, so ``auto`` means the same thing for all of them and a bad value is
the same one-line error whichever model it was given to.
"""

from __future__ import annotations

import warnings

import torch

from ..errors import InferenceSettingsError

#: ``--precision`` -> the dtype of weights and activations
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA, else Apple MPS, else CPU; an explicit device must exist.

    Raises:
        InferenceSettingsError: an unknown device name, or one this machine does not have.
    """
    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise InferenceSettingsError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InferenceSettingsError(f"--device {name}: CUDA is not available on this machine (torch {torch.__version__})")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InferenceSettingsError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InferenceSettingsError(f"--device {name}: Apple MPS is not available on this machine")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InferenceSettingsError(f"--device {name}: unsupported device type {dev.type!r}")
    return dev


def check_precision(precision: str) -> torch.dtype:
    """The dtype of ``precision`` (a key of `PRECISIONS`).

    Raises:
        InferenceSettingsError: naming the accepted values.
    """
    if precision not in PRECISIONS:
        raise InferenceSettingsError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


def resolve_placement(device: str | torch.device = "auto", precision: str = "fp32", stacklevel: int = 3
                      ) -> tuple[torch.device, torch.dtype]:
    """``(device, dtype)`` a model runs with; fp16 on the CPU is allowed but warned about.

    Raises:
        InferenceSettingsError: see `resolve_device` and `check_precision`.
    """
    dtype = check_precision(precision)
    dev = resolve_device(device)
    if dev.type == "cpu" and dtype == torch.float16:
        # the warning points at the adapter's caller, as it did when each adapter warned itself
        warnings.warn("fp16 on the CPU is slow and overflow-prone; prefer fp32 or bf16 there",
                      stacklevel=stacklevel + 1)
    return dev, dtype


def check_common_settings(*, ensemble=1, batch_size=0, precision="fp32", device=None) -> None:
    """Reject invalid values of the settings every adapter takes, before any weights are read.

    Raises:
        InferenceSettingsError: naming the setting and the accepted values.
    """
    check_precision(precision)
    if int(ensemble) < 1:
        raise InferenceSettingsError(f"ensemble size must be >= 1, got {ensemble}")
    if int(batch_size) < 0:
        raise InferenceSettingsError(f"batch size must be >= 0 (0 = auto), got {batch_size}")
    if device is not None:
        resolve_device(device)


__all__ = ["PRECISIONS", "resolve_device", "check_precision", "resolve_placement", "check_common_settings"]
