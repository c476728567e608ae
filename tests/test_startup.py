"""Commands that load no model start fast: they never import torch, diffusers or transformers.

Importing torch alone costs seconds; `table`, `compare`, `regress`, `rescore` and `protocols`
read run directories and score cached predictions with numpy. The check runs in a fresh
interpreter, since the test process itself has torch loaded.
"""

import json
import subprocess
import sys
from pathlib import Path

from marigold_bench.cli import main

BASELINE = Path(__file__).resolve().parents[1] / "results" / "baselines" / "synthetic-tiny.json"

SCRIPT = r"""
import json, sys
from marigold_bench.cli import build_parser, main
build_parser()
a, b, out = sys.argv[1:4]
codes = [main(["table", a, b]), main(["compare", a, b, "--resamples", "200"]),
         main(["rescore", a, "--out", out]), main(["protocols"]),
         main(["regress", "--baseline", sys.argv[4], a])]
heavy = [m for m in ("torch", "diffusers", "transformers", "accelerate") if m in sys.modules]
print("RESULT", json.dumps({"codes": codes, "heavy": heavy}))
"""


def test_table_compare_regress_and_rescore_never_import_torch(tmp_path):
    runs = []
    for name, model in (("a", "baseline:ramp"), ("b", "baseline:constant")):
        runs.append(tmp_path / name)
        assert main(["run", "--dataset", "synthetic", "--model", model, "--max-samples", "3",
                     "--out", str(runs[-1])]) == 0
    done = subprocess.run([sys.executable, "-c", SCRIPT, *map(str, runs), str(tmp_path / "re"), str(BASELINE)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.rsplit("RESULT", 1)[1])
    assert result["heavy"] == [], f"imported {result['heavy']}"
    # every command did its work (regress: 2, the baseline was made with another model)
    assert result["codes"] == [0, 0, 0, 0, 2]
    assert (tmp_path / "re" / "per_sample.csv").read_bytes() == (runs[0] / "per_sample.csv").read_bytes()
    assert "synthetic" in done.stdout and "marigold: " in done.stdout
