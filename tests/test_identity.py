"""Protocol identity: the hash is stable across processes, blind to prose and location, and
changes when any input that changes a number changes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from marigold_bench.eval.identity import hash_differences, identity, protocol_hash, protocol_id, record

SUMMARY = {
    "dataset": "nyu",
    "scoring": {"protocol": "marigold", "source": "Ke et al.", "dataset": "nyu",
                "output_space": "depth_affine_invariant", "alignment": "affine", "fit_space": "depth",
                "fit": "least squares", "fit_resolution": "full", "fit_max_resolution": None,
                "fit_downsample": "width_only", "weights": "none", "clip_to_range": True,
                "min_depth": 0.001, "max_depth": 10.0, "metric_definitions": "marigold",
                "metric_keys": ["abs_rel", "delta1"], "boundary_f1_radius": None, "overrides": [],
                "crop": "eigen", "disparity_floor": 0.001, "protocol_version": 1},
    "protocol": {"name": "nyu", "min_depth": 0.001, "max_depth": 10.0, "eval_mask": "eigen",
                 "range_in_valid": True, "fit_max_resolution": None, "fit_downsample": "width_only",
                 "split_sha256": "ab" * 32, "root": "/data/a", "source": "/data/a/nyuv2/x.tar",
                 "count": 654, "processing_res": 0},
}


def test_id_and_a_hash_recorded_for_new_runs():
    assert protocol_id(SUMMARY) == "marigold/1"
    rec = record(SUMMARY)
    assert rec["protocol_hash"] == protocol_hash(SUMMARY) and len(rec["protocol_hash"]) == 16
    assert identity({**SUMMARY, "protocol_identity": rec})["hash_source"] == "recorded"
    assert "computed" in identity(SUMMARY)["hash_source"]  # a 0.3 run directory: said so


def _as_written_by_0_3(summary: dict) -> dict:
    """A summary as 0.3 wrote it: no identity, and a scoring record without the keys 0.4 added
    (0.3 always scored the benchmark's own crop and had one disparity floor per protocol)."""
    old = copy.deepcopy(summary)
    old.pop("protocol_identity", None)
    for key in ("crop", "disparity_floor", "protocol_version"):
        old["scoring"].pop(key)
    return old


@pytest.mark.parametrize("protocol, floor", [("marigold", 1e-3), ("moge", 1e-6)])
def test_a_0_3_run_hashes_as_the_same_rules_scored_in_0_4(protocol, floor):
    new = copy.deepcopy(SUMMARY)
    new["scoring"].update(protocol=protocol, disparity_floor=floor)
    new["protocol_identity"] = record(new)
    old = identity(_as_written_by_0_3(new))
    assert old["protocol_hash"] == new["protocol_identity"]["protocol_hash"]
    assert "computed" in old["hash_source"]
    assert hash_differences(_as_written_by_0_3(new), new) == []
    # a 0.4 run that scored another crop than the benchmark's own is not mistaken for one
    cropped = copy.deepcopy(new)
    cropped["scoring"]["crop"] = "garg"
    assert protocol_hash(cropped) != old["protocol_hash"]


def test_the_hash_is_the_same_in_another_process():
    code = ("import json, sys; from marigold_bench.eval.identity import protocol_hash; "
            "print(protocol_hash(json.loads(sys.stdin.read())))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(SUMMARY), capture_output=True,
                         text=True, check=True, env={"PYTHONHASHSEED": "123", **__import__("os").environ})
    assert out.stdout.strip() == protocol_hash(SUMMARY)


@pytest.mark.parametrize("path, value", [
    (("scoring", "protocol"), "moge"),
    (("scoring", "alignment"), "scale"),
    (("scoring", "fit_space"), "disparity"),
    (("scoring", "fit_max_resolution"), 1024),
    (("scoring", "clip_to_range"), False),
    (("scoring", "min_depth"), 0.01),
    (("scoring", "metric_definitions"), "moge"),
    (("scoring", "metric_keys"), ["abs_rel"]),
    (("scoring", "boundary_f1_radius"), 1),
    (("scoring", "crop"), "garg"),
    (("protocol", "eval_mask"), None),
    (("protocol", "max_depth"), 80.0),
    (("protocol", "range_in_valid"), False),
    (("protocol", "split_sha256"), "cd" * 32),
    (("dataset",), "kitti"),
])
def test_each_input_changes_the_hash_and_is_named(path, value):
    changed = copy.deepcopy(SUMMARY)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert protocol_hash(changed) != protocol_hash(SUMMARY)
    name = ".".join(("benchmark",) + path[1:]) if path[0] == "protocol" else ".".join(path)
    lines = hash_differences(SUMMARY, changed)
    assert any(line.startswith(name + ":") for line in lines)
    # besides the input itself only the protocol id can follow it (it names the protocol)
    assert all(line.startswith((name + ":", "protocol_id:")) for line in lines)


@pytest.mark.parametrize("path, value", [
    (("scoring", "source"), "another citation"),
    (("scoring", "fit"), "reworded"),
    (("scoring", "overrides"), ["alignment"]),
    (("protocol", "root"), "/elsewhere"),
    (("protocol", "source"), "/elsewhere/x.tar"),
    (("protocol", "count"), 8),
    (("protocol", "processing_res"), 768),
])
def test_prose_location_and_sample_count_do_not(path, value):
    changed = copy.deepcopy(SUMMARY)
    changed[path[0]][path[1]] = value
    assert protocol_hash(changed) == protocol_hash(SUMMARY)
    assert hash_differences(SUMMARY, changed) == []


def test_a_run_records_its_hash_and_rescore_under_the_same_protocol_keeps_it(tmp_path):
    from marigold_bench.cli import main

    run = tmp_path / "run"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "2",
                 "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    recorded = summary["protocol_identity"]
    assert recorded["protocol_id"] == "marigold/1" and recorded["protocol_hash"] == protocol_hash(summary)
    assert main(["rescore", str(run), "--out", str(tmp_path / "same")]) == 0
    same = json.loads((tmp_path / "same" / "summary.json").read_text())
    assert same["protocol_identity"]["protocol_hash"] == recorded["protocol_hash"]
    assert main(["rescore", str(run), "--protocol", "moge", "--out", str(tmp_path / "moge")]) == 0
    moge = json.loads((tmp_path / "moge" / "summary.json").read_text())
    assert moge["protocol_identity"]["protocol_id"] == "moge/1"
    assert moge["protocol_identity"]["protocol_hash"] != recorded["protocol_hash"]


def test_table_warns_and_compare_names_what_differs_between_hashes(tmp_path, capsys):
    from marigold_bench.cli import main

    run = tmp_path / "run"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "2",
                 "--out", str(run)]) == 0
    assert main(["rescore", str(run), "--alignment", "median", "--out", str(tmp_path / "median")]) == 0
    capsys.readouterr()
    assert main(["table", str(run), str(tmp_path / "median")]) == 0
    out, err = capsys.readouterr()
    assert "warning: Synthetic: rows were computed under 2 protocol hashes" in err
    assert "scoring.alignment" in err and "protocol hashes" in out  # under the table too
    assert main(["table", str(run)]) == 0
    assert "protocol hashes" not in capsys.readouterr().err  # one hash: nothing to say
    assert main(["compare", str(run), str(tmp_path / "median")]) == 0
    out = capsys.readouterr().out
    assert "the hashes differ in:" in out
    assert '  scoring.alignment: "affine" vs "median"' in out
    assert main(["compare", str(run), str(run)]) == 0
    assert "for both (comparable by construction)" in capsys.readouterr().out


def test_protocol_card_cites_the_hash_a_run_records(tmp_path, capsys):
    import yaml

    from marigold_bench.cli import main

    run = tmp_path / "run"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:ramp", "--max-samples", "2",
                 "--out", str(run)]) == 0
    recorded = json.loads((run / "summary.json").read_text())["protocol_identity"]["protocol_hash"]
    capsys.readouterr()
    assert main(["protocols", "--card", "marigold"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["protocol_id"] == "marigold/1"
    assert card["protocol_hash_by_benchmark"]["synthetic"] == recorded
    assert card["alignment_by_output_space"]["disparity_affine_invariant"]["fit_space"] == "disparity"
    assert card["metrics"]["abs_rel"]["better"] == "lower"
    assert main(["protocols", "--card", "moge", "--format", "yaml"]) == 0
    moge = yaml.safe_load(capsys.readouterr().out)
    assert moge["protocol_id"] == "moge/1" and moge["rules"]["clip_to_range"] is False
    assert moge["protocol_hash_by_benchmark"]["synthetic"] != recorded
    assert main(["protocols", "--card", "nope"]) == 2
    assert "unknown protocol" in capsys.readouterr().err


def test_every_registered_protocol_prints_a_card(tmp_path):
    """A card exists for every protocol of every task, metric ones included: an output space a
    protocol refuses by default is said to be refused, and the hashes are those of the first
    space it scores unasked (metric depth for ZoeDepth's), equal to what such a run records."""
    from marigold_bench.cli import main
    from marigold_bench.eval.identity import protocol_card
    from marigold_bench.eval.protocols import EVALUATION_PROTOCOLS, NORMALS_PROTOCOLS

    for name in EVALUATION_PROTOCOLS:
        card = protocol_card(name, "depth")
        assert card["name"] == name and card["protocol_id"].startswith(f"{name}/")
    for name in NORMALS_PROTOCOLS:
        assert protocol_card(name, "normals")["task"] == "normals"
    zoe = protocol_card("zoedepth", "depth")
    assert zoe["alignment_by_output_space"]["depth_affine_invariant"]["alignment"] is None
    assert zoe["protocol_hash_output_space"] == "depth_metric"
    assert protocol_card("marigold", "depth")["protocol_hash_output_space"] == "depth_affine_invariant"
    out = tmp_path / "run"
    assert main(["run", "--dataset", "synthetic", "--model", "baseline:constant", "--output-space", "depth_metric",
                 "--protocol", "zoedepth", "--max-samples", "1", "--out", str(out)]) == 0
    recorded = json.loads((out / "summary.json").read_text())["protocol_identity"]["protocol_hash"]
    assert zoe["protocol_hash_by_benchmark"]["synthetic"] == recorded


def test_a_card_names_the_benchmarks_whose_hash_only_a_run_can_know():
    from marigold_bench.eval.identity import protocol_card

    card = protocol_card("zoedepth")
    # listed from the data (no pinned split file): never silently missing from the card
    assert {"sunrgbd", "ibims", "ddad"} <= set(card["protocol_hash_recorded_by_runs_only"])
    assert not set(card["protocol_hash_recorded_by_runs_only"]) & set(card["protocol_hash_by_benchmark"])
    assert protocol_card("da2k")["protocol_hash_recorded_by_runs_only"] == ["da2k"]
