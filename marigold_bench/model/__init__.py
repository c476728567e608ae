"""Model building blocks: SD-v2 -> Marigold conversion, training noise, tiny stand-in components."""

from marigold_bench.model.convert import expand_conv_in

__all__ = ["expand_conv_in"]
