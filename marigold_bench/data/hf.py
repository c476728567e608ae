"""Any benchmark as a Hugging Face ``datasets.Dataset``: to map, filter, save to disk or share.

>>> ds = to_hf_dataset("synthetic", split="val", max_samples=2)   # doctest: +SKIP
>>> ds.features["image"], ds[0]["id"]                              # doctest: +SKIP
(Image(mode=None, decode=True), 'synthetic/val/0000')

The rows are exactly the suite's items (``load_dataset(name, root, split)``): the RGB image
(stored losslessly as PNG by ``datasets.Image``), the metric depth (float32) and the validity
mask of the benchmark's protocol -- the pixels the metrics score -- under the sample's id.
Building it reads every sample once and writes Arrow files to the ``datasets`` cache.
"""

from __future__ import annotations

import hashlib
import inspect
import json

from marigold_bench.errors import BenchError


def _rows(name, root, split, max_samples, shape, key):
    """Generator of rows (module level with plain arguments, so ``datasets`` can hash it;
    ``key`` is the fingerprint of the content, see :func:`to_hf_dataset`)."""
    from marigold_bench.data.loaders import load_dataset

    dataset = load_dataset(name, root, split).subset(max_samples)
    for index in range(len(dataset)):
        item = dataset[index]
        if item["depth"].shape != shape:
            raise BenchError(f"{name} sample {item['id']} is {item['depth'].shape[1]}x{item['depth'].shape[0]}, "
                             f"the first one {shape[1]}x{shape[0]}: a datasets.Dataset of fixed-size "
                             "arrays needs one size (pick a split of one resolution)")
        yield {"id": item["id"], "image": item["rgb"], "depth": item["depth"], "valid": item["valid"]}


def _fingerprint(name, dataset, max_samples) -> str:
    """What identifies the rows: benchmark, split file content, protocol, source and its stamp."""
    import marigold_bench

    info = dataset.describe()
    stamp = None
    source = getattr(dataset, "source", None)
    if source is not None and source.path.exists():
        st = source.path.stat()
        stamp = [st.st_size, st.st_mtime_ns]
    payload = dict(name=name, info=info, stamp=stamp, max_samples=max_samples,
                   protocol=dataset.protocol.to_dict(), version=marigold_bench.__version__)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def to_hf_dataset(name: str, root=None, split=None, max_samples: int | None = None, cache_dir=None):
    """Benchmark ``name`` as a ``datasets.Dataset`` with columns ``id``, ``image``, ``depth``, ``valid``.

    Args:
        name, root, split: as for :func:`marigold_bench.data.load_dataset` (``synthetic`` needs no
            root; ``split`` None is the test split).
        max_samples: only the first this many samples.
        cache_dir: where ``datasets`` writes its Arrow files (default: its own cache).

    Returns:
        `datasets.Dataset`: ``id`` (string), ``image`` (``datasets.Image``, the uint8 RGB),
        ``depth`` (``Array2D`` float32, metres) and ``valid`` (``Array2D`` bool, the pixels the
        protocol scores), one row per sample in split order.

    The Arrow cache is keyed on the split file's sha256, the protocol, the data source's path,
    size and modification time and the package version, so a changed archive is read again.
    """
    import datasets  # the Hugging Face package (the repository's datasets/ folder holds notes only)

    from marigold_bench.data.loaders import load_dataset

    dataset = load_dataset(name, root, split).subset(max_samples)
    if len(dataset) == 0:
        raise BenchError(f"{name}: no samples to convert")
    shape = tuple(dataset[0]["depth"].shape)
    features = datasets.Features({
        "id": datasets.Value("string"),
        "image": datasets.Image(),
        "depth": datasets.Array2D(shape=shape, dtype="float32"),
        "valid": datasets.Array2D(shape=shape, dtype="bool"),
    })
    key = _fingerprint(name, dataset, max_samples)
    kwargs = dict(features=features, cache_dir=None if cache_dir is None else str(cache_dir),
                  gen_kwargs=dict(name=name, root=None if root is None else str(root),
                                  split=None if split is None else str(split), max_samples=max_samples,
                                  shape=shape, key=key))
    if "fingerprint" in inspect.signature(datasets.Dataset.from_generator).parameters:  # datasets >= 4.3
        kwargs["fingerprint"] = key
    return datasets.Dataset.from_generator(_rows, **kwargs)


__all__ = ["to_hf_dataset"]
