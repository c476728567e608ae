"""A normals run resumes from its prediction cache as a depth run does: an interrupted run
predicts only what it lacks, a larger ensemble only the new members, and the numbers equal an
uninterrupted run's."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from marigold_bench.cli import main
from marigold_bench.inference.predictor import MarigoldPredictor

RUN = ["run", "--task", "normals", "--dataset", "synthetic", "--max-samples", "3", "--steps", "1",
       "--processing-res", "48"]


@pytest.fixture
def predicted(monkeypatch):
    """Every (sample id, member) the normals predictor is asked for, in order."""
    asked = []
    real = MarigoldPredictor.predict

    def spy(self, jobs):
        asked.extend((sid, m) for sid, _, members in jobs for m in members)
        return real(self, jobs)

    monkeypatch.setattr(MarigoldPredictor, "predict", spy)
    return asked


def test_an_interrupted_normals_run_resumes_and_scores_as_an_uninterrupted_one(tmp_path, predicted, monkeypatch):
    assert main([*RUN, "--ensemble", "2", "--out", str(tmp_path / "whole")]) == 0
    whole = pd.read_csv(tmp_path / "whole" / "per_sample.csv")
    assert len(predicted) == 6
    predicted.clear()

    # the second sample's prediction is cut short (as by Ctrl-C): the first is in the cache
    real = MarigoldPredictor.predict
    calls = []

    def interrupted(self, jobs):
        calls.append(jobs)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, jobs)

    monkeypatch.setattr(MarigoldPredictor, "predict", interrupted)
    assert main([*RUN, "--ensemble", "2", "--out", str(tmp_path / "cut")]) == 130   # "rerun to resume"
    monkeypatch.setattr(MarigoldPredictor, "predict", real)

    asked = []

    def spy(self, jobs):
        asked.extend((sid, m) for sid, _, members in jobs for m in members)
        return real(self, jobs)

    monkeypatch.setattr(MarigoldPredictor, "predict", spy)
    assert main([*RUN, "--ensemble", "2", "--out", str(tmp_path / "cut")]) == 0
    first = whole["id"][0]
    assert first not in {sid for sid, _ in asked} and len(asked) == 4   # only the two it lacked
    resumed = pd.read_csv(tmp_path / "cut" / "per_sample.csv")
    pd.testing.assert_frame_equal(resumed, whole)

    # a larger ensemble predicts only the new member of each image
    asked.clear()
    assert main([*RUN, "--ensemble", "3", "--out", str(tmp_path / "cut")]) == 0
    assert sorted(m for _, m in asked) == [2, 2, 2]
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["task"] == "normals" and summary["settings"]["ensemble"] == 3
