"""marigold-bench: train, run and evaluate diffusion-based monocular depth estimators."""

__version__ = "0.3.0"
