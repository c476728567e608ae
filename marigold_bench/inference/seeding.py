"""Per-member seeds.

The starting noise of ensemble member ``k`` of sample ``s`` depends only on ``(seed, s, k)``. A
run therefore gives the same members whatever its ensemble size, batch size, sample order,
sharding or resumption, and an N=10 run contains the members of every N<10 run with the same
seed. (The official scripts draw from one generator in processing order, or re-seed per image
and batch by GPU memory; both tie a member's noise to how the run was executed.)

The starting noise is identical bit for bit. The predictions made from it are identical bit for
bit when a member lands in a batch of the same shape, and otherwise equal up to the round-off of
batched kernels (about 1e-6 in fp32), which no choice of seeds can remove.
"""

from __future__ import annotations

import hashlib

import torch

# Part of the hashed text so that these seeds do not collide with other uses of sha256(seed).
_DOMAIN = "marigold-bench/member-noise/v1"


def member_seed(seed: int, sample_id: str, member: int) -> int:
    """A stable 63-bit seed for member ``member`` of sample ``sample_id`` under run seed ``seed``.

    Args:
        seed (`int`): the run's seed (``--seed``).
        sample_id (`str`): the sample's id, e.g. ``"test/kitchen_0004/rgb_0001"``.
        member (`int`): the ensemble member index, 0-based.

    Returns:
        `int`: the same value on every machine, Python version and process (sha256, not `hash`).
    """
    text = f"{_DOMAIN}|{int(seed)}|{sample_id}|{int(member)}"
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def member_generator(seed: int, sample_id: str, member: int) -> torch.Generator:
    """A CPU `torch.Generator` seeded with `member_seed`.

    Noise is always drawn on the CPU and then moved, so that the same seed gives the same noise on
    every device (CUDA and CPU generators produce different streams).
    """
    generator = torch.Generator(device="cpu")
    generator.manual_seed(member_seed(seed, sample_id, member))
    return generator


__all__ = ["member_seed", "member_generator"]
