"""Trainer plumbing: the JSON it leaves (configs, metrics, summaries) is strict JSON."""

from __future__ import annotations

import json

import numpy as np

from core_model.train.common import write_json


def _strict(text: str):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_metric_that_could_not_be_computed_is_null_and_said(tmp_path, capsys):
    # e.g. an AUC on a validation split that holds one class only
    path = tmp_path / "run" / "summary.json"
    write_json(path, {"val_auc": float("nan"), "val_acc": np.float32(0.75), "ci": (float("inf"), 0.9), "n": np.int64(3)})
    assert _strict(path.read_text(encoding="utf-8")) == {"val_auc": None, "val_acc": 0.75, "ci": [None, 0.9], "n": 3}
    err = capsys.readouterr().err
    assert "val_auc" in err and "ci[0]" in err and "summary.json" in err
    assert not list(path.parent.glob("*.tmp"))
