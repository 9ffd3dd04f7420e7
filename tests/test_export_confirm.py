"""``python -m export.confirm``: per-label alert confirmation chosen through the runtime and
written into a bundle (no torch: the runtime and the evaluation harness only)."""

from __future__ import annotations

import json

import pytest
from test_eval_harness import _tiny_split

import aim_edge
from aim_edge.bundle import load_bundle
from export.confirm import main


def test_confirm_shows_then_writes_the_choice_and_its_counts(bundle_copy, tmp_path, capsys):
    _tiny_split(tmp_path / "dev")
    before = (bundle_copy / "manifest.json").read_text()
    assert main([str(bundle_copy), "--scenes", str(tmp_path / "dev"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 scenes" in out and "siren" in out and "add --write" in out
    assert (bundle_copy / "manifest.json").read_text() == before  # shown only

    rc = main([str(bundle_copy), "--scenes", str(tmp_path / "dev"), "--no-progress",
               "--write", "--json", str(tmp_path / "c.json")])
    assert rc == 0
    thr = json.loads((bundle_copy / "manifest.json").read_text())["thresholds"]
    labels = [e.name for e in load_bundle(bundle_copy).events]
    assert sorted(thr["confirm_chunks"]) == sorted(labels)
    assert set(thr["confirm_chunks"].values()) <= {1, 2}
    rec = thr["confirm_chosen_on"]
    assert rec["n_scenes"] == 1 and rec["hours"] == pytest.approx(6 / 3600, abs=1e-4)
    siren = rec["counts_tp_fn_fp"]["siren"]
    # the scene holds one siren: each confirmation detects it or misses it
    assert [siren[n][0] + siren[n][1] for n in ("1", "2")] == [1, 1]
    assert json.loads((tmp_path / "c.json").read_text())["confirm_chunks"] == \
        thr["confirm_chunks"]
    # the runtime's policy takes it from the manifest
    with aim_edge.Engine.from_bundle(bundle_copy, backend="onnxruntime") as engine:
        pol = engine.new_policy()
        assert dict(zip(pol.events, pol.confirm.tolist(), strict=True)) == thr["confirm_chunks"]


def test_confirm_names_a_missing_scene_folder(bundle_copy, tmp_path, capsys):
    assert main([str(bundle_copy), "--scenes", str(tmp_path / "nope"), "--no-progress"]) == 2
    assert "no *.jsonl scene manifests" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--scenes", str(tmp_path)])
    assert "no manifest.json" in capsys.readouterr().err


def test_a_choice_the_runtime_refuses_leaves_the_bundle_as_it_was(bundle_copy):
    from aim_edge.errors import BundleError
    from export.confirm import write_confirm

    before = (bundle_copy / "manifest.json").read_text()
    with pytest.raises(BundleError, match="names unknown label 'no_such_label'"):
        write_confirm(bundle_copy, {"no_such_label": 2}, {"scenes": "dev"})
    assert (bundle_copy / "manifest.json").read_text() == before
    load_bundle(bundle_copy)
