"""CI's regression gate: the default model on the synthetic set against the committed baseline.

The run's flags come from the baseline itself (``run_args``: dataset, sample count, steps, N),
so that the check stays small (well under a minute on two CPU cores) and always repeats what the
baseline measured. If the default model changes (the bundled tiny checkpoint), regenerate the
baseline deliberately -- the command is in the baseline's ``description``.
"""

import json
from pathlib import Path

from marigold_bench.cli import main

BASELINE = Path(__file__).resolve().parents[1] / "results" / "baselines" / "synthetic-tiny.json"


def test_default_model_on_synthetic_matches_the_committed_baseline(tmp_path, capsys):
    baseline = json.loads(BASELINE.read_text())
    run_args = baseline["run_args"]
    assert "--model" not in run_args  # CI checks whatever the default model is
    out = tmp_path / "run"
    assert main(["run", *run_args, "--out", str(out)]) == 0
    code = main(["regress", "--baseline", str(BASELINE), str(out)])
    report = capsys.readouterr().out
    assert code == 0, report
    assert "no regression" in report
