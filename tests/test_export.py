"""`marigold-bench export`: values round-trip to the printed precision, the YAML loads with a
plain loader into the documented entry shape and parses with huggingface_hub, partial runs are
marked, empty runs refused."""

from __future__ import annotations

import csv
import json
import os

import pytest
import yaml

from marigold_bench.cli import main
from marigold_bench.eval.identity import protocol_hash


def write_run(path, dataset="nyu", n=654, n_total=654, metrics=None, subsets=None, protocol="marigold",
              model="prs-eth/marigold-depth-v1-0"):
    os.makedirs(path, exist_ok=True)
    summary = {"dataset": dataset, "n": n, "n_total": n_total,
               "metrics": metrics or {"abs_rel": 0.055123, "delta1": 0.96449, "rmse": 0.2231},
               "settings": {"model": model},
               "scoring": {"protocol": protocol, "alignment": "affine", "fit_space": "depth",
                           "metric_keys": ["abs_rel", "delta1", "rmse"]},
               "protocol": {"min_depth": 0.001, "max_depth": 10.0, "eval_mask": "eigen",
                            "split_sha256": "ab" * 32}}
    if subsets:
        summary["subsets"] = subsets
    with open(os.path.join(path, "summary.json"), "w") as f:
        json.dump(summary, f)
    with open(os.path.join(path, "per_sample.csv"), "w") as f:
        f.write("id,abs_rel\n")
    return summary


def test_values_round_trip_and_the_yaml_has_the_documented_shape(tmp_path):
    summary = write_run(tmp_path / "run")
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "run"), "--out", str(out)]) == 0
    entries = yaml.safe_load((out / ".eval_results" / "nyu.yaml").read_text())
    assert [e["dataset"]["task_id"] for e in entries] == ["abs_rel", "delta1"]
    by_task = {e["dataset"]["task_id"]: e for e in entries}
    # as papers print them: x100, two decimals (5.5123 -> 5.51, 96.449 -> 96.45)
    assert by_task["abs_rel"]["value"] == 5.51 and by_task["delta1"]["value"] == 96.45
    for entry in entries:
        assert set(entry) == {"dataset", "value", "date", "source", "notes"}
        assert entry["dataset"]["id"] == "nyu"
        assert set(entry["source"]) == {"url", "name"}
        assert f"hash {protocol_hash(summary)}" in entry["notes"] and "marigold/1" in entry["notes"]
        assert "partial" not in entry["notes"]
        assert entry["source"]["url"] == (f"https://huggingface.co/prs-eth/marigold-depth-v1-0/blob/main/"
                                          f"protocol-cards/marigold-{protocol_hash(summary)}.json")
    from huggingface_hub import parse_eval_result_entries
    parsed = parse_eval_result_entries(entries)
    assert parsed[0].dataset_id == "nyu" and parsed[0].value == 5.51
    card = json.loads((out / "protocol-cards" / f"marigold-{protocol_hash(summary)}.json").read_text())
    assert card["protocol_hash"] == protocol_hash(summary)
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert float(rows[0]["value"]) == summary["metrics"]["abs_rel"]  # exact in the CSV
    index = yaml.safe_load((out / "model-index.yaml").read_text())
    results = index["model-index"][0]["results"]
    found = {m["type"]: m["value"] for r in results for m in r["metrics"]}
    assert found == {"abs_rel": 5.51, "delta1": 96.45}


def test_partial_runs_are_marked_and_empty_runs_refused(tmp_path, capsys):
    write_run(tmp_path / "part", n=600, n_total=654)
    assert main(["export", str(tmp_path / "part"), "--out", str(tmp_path / "o1"), "--digits", "1"]) == 0
    entries = yaml.safe_load((tmp_path / "o1" / ".eval_results" / "nyu.yaml").read_text())
    assert all("partial: 600/654 samples scored" in e["notes"] for e in entries)
    assert entries[0]["value"] == 5.5
    write_run(tmp_path / "empty", n=0, n_total=654)
    assert main(["export", str(tmp_path / "empty"), "--out", str(tmp_path / "o2")]) == 2
    assert "scored no sample" in capsys.readouterr().err


def test_subsets_and_protocols_are_variants_and_duplicates_are_refused(tmp_path, capsys):
    part = {"n": 325, "n_total": 325, "metrics": {"abs_rel": 0.1, "delta1": 0.9}}
    write_run(tmp_path / "diode", dataset="diode", n=771, n_total=771,
              subsets={"indoor": part, "outdoor": {**part, "n": 446, "n_total": 446}, "all": {}})
    write_run(tmp_path / "moge", protocol="moge")
    write_run(tmp_path / "nyu")
    args = ["export", str(tmp_path / "diode"), str(tmp_path / "moge"), str(tmp_path / "nyu"),
            "--out", str(tmp_path / "o"), "--dataset-id", "nyu=sayakpaul/nyu_depth_v2"]
    assert main(args) == 0
    names = sorted(os.listdir(tmp_path / "o" / ".eval_results"))
    assert names == ["diode.yaml", "diode_indoor.yaml", "diode_outdoor.yaml", "nyu.yaml", "nyu_moge.yaml"]
    nyu = yaml.safe_load((tmp_path / "o" / ".eval_results" / "nyu.yaml").read_text())
    assert nyu[0]["dataset"]["id"] == "sayakpaul/nyu_depth_v2"
    indoor = yaml.safe_load((tmp_path / "o" / ".eval_results" / "diode_indoor.yaml").read_text())
    assert [e["dataset"]["task_id"] for e in indoor] == ["indoor_abs_rel", "indoor_delta1"]
    assert indoor[0]["value"] == 10.0
    write_run(tmp_path / "nyu2")
    assert main(["export", str(tmp_path / "nyu"), str(tmp_path / "nyu2"), "--out", str(tmp_path / "o3")]) == 2
    assert "export one run per benchmark and protocol" in capsys.readouterr().err


def test_a_model_name_that_looks_like_a_formula_is_escaped_in_the_csv(tmp_path):
    write_run(tmp_path / "run", model="=HYPERLINK(1)")
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "o")]) == 0
    rows = list(csv.DictReader((tmp_path / "o" / "results.csv").open()))
    assert rows[0]["model"] == "'=HYPERLINK(1)"


def test_a_prefix_run_and_a_run_on_another_split_are_marked_partial_everywhere(tmp_path):
    summary = write_run(tmp_path / "prefix", n=6, n_total=6)
    summary["subset"] = {"n": 6, "of": 654}
    (tmp_path / "prefix" / "summary.json").write_text(json.dumps(summary))
    assert main(["export", str(tmp_path / "prefix"), "--out", str(tmp_path / "o")]) == 0
    entries = yaml.safe_load((tmp_path / "o" / ".eval_results" / "nyu.yaml").read_text())
    assert all("partial: first 6 of 654 samples (--max-samples)" in e["notes"] for e in entries)
    rows = list(csv.DictReader((tmp_path / "o" / "results.csv").open()))
    assert {r["partial"] for r in rows} == {"True"}
    index = yaml.safe_load((tmp_path / "o" / "model-index.yaml").read_text())
    names = {r["dataset"]["name"] for r in index["model-index"][0]["results"]}
    assert names == {"nyu [partial: first 6 of 654 samples (--max-samples)]"}

    # an indoor-only DIODE run (the official indoor list): its empty outdoor half is skipped, and
    # the whole-benchmark entry says it is not the test list
    part = {"n": 325, "n_total": 325, "metrics": {"abs_rel": 0.1, "delta1": 0.9}}
    diode = write_run(tmp_path / "indoor", dataset="diode", n=325, n_total=325,
                      subsets={"indoor": part, "outdoor": {"n": 0, "n_total": 0, "metrics": {}}, "all": part})
    diode["protocol"].update(split_file="/splits/diode_depth/diode_val_indoor_filename_list.txt",
                             split_official=True, default_split="diode_depth/diode_val_all_filename_list.txt")
    (tmp_path / "indoor" / "summary.json").write_text(json.dumps(diode))
    assert main(["export", str(tmp_path / "indoor"), "--out", str(tmp_path / "d")]) == 0
    assert sorted(os.listdir(tmp_path / "d" / ".eval_results")) == ["diode.yaml", "diode_indoor.yaml"]
    whole = yaml.safe_load((tmp_path / "d" / ".eval_results" / "diode.yaml").read_text())
    assert all("partial: split diode_val_indoor_filename_list.txt (not the benchmark's test list)" in e["notes"]
               for e in whole)


def test_values_in_other_units_keep_two_more_decimals_as_table_prints_them(tmp_path):
    write_run(tmp_path / "run", metrics={"abs_rel": 0.055123, "delta1": 0.96449, "rmse": 0.22317,
                                          "ause_abs_rel": 0.13649})
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "o"),
                 "--metrics", "abs_rel,rmse,ause_abs_rel"]) == 0
    entries = yaml.safe_load((tmp_path / "o" / ".eval_results" / "nyu.yaml").read_text())
    values = {e["dataset"]["task_id"]: e["value"] for e in entries}
    assert values == {"abs_rel": 5.51, "rmse": 0.2232, "ause_abs_rel": 0.1365}


def test_a_run_written_before_hashes_says_its_hash_was_computed(tmp_path):
    summary = write_run(tmp_path / "old")
    assert main(["export", str(tmp_path / "old"), "--out", str(tmp_path / "o")]) == 0
    entries = yaml.safe_load((tmp_path / "o" / ".eval_results" / "nyu.yaml").read_text())
    assert all(f"hash {protocol_hash(summary)} (computed: run written before 0.4)" in e["notes"] for e in entries)
    from marigold_bench.eval.identity import record

    summary["protocol_identity"] = record(summary)
    (tmp_path / "old" / "summary.json").write_text(json.dumps(summary))
    assert main(["export", str(tmp_path / "old"), "--out", str(tmp_path / "o2")]) == 0
    entries = yaml.safe_load((tmp_path / "o2" / ".eval_results" / "nyu.yaml").read_text())
    assert all("computed" not in e["notes"] for e in entries)
