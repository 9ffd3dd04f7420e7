"""``python -m benchmarks.instruction_effect``: the event head scored with and without the
scenes' instructions, the way the runtime alerts."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("torch", reason="torch is needed to run a checkpoint: pip install -e .[export]")
from test_eval_harness import _tiny_split  # noqa: E402

import export.evaluate  # noqa: E402
from aim_edge import bundles  # noqa: E402
from benchmarks.instruction_effect import DEFAULT_CHECKPOINT, main  # noqa: E402


def test_counts_with_and_without_the_instruction(tmp_path, capsys, monkeypatch):
    if bundles.default_bundle_path() is None:
        pytest.skip("no default bundle in aim_edge/models/default (the shipped model)")
    _tiny_split(tmp_path / "dev")
    seen = []  # per run_model call: does any chunk carry an instruction?
    real = export.evaluate.run_model

    def spy(model, streams, threads=2):
        seen.append(any(s.instruction_ids.any() for s in streams))
        return real(model, streams, threads)

    monkeypatch.setattr(export.evaluate, "run_model", spy)
    monkeypatch.chdir(tmp_path)  # the defaults do not depend on the working directory
    out = tmp_path / "effect.json"
    assert main(["--split", str(tmp_path / "dev"), "--json", str(out)]) == 0
    assert seen == [True, False]  # the scene's instruction, then none
    res = json.loads(out.read_text())
    assert res["checkpoint"] == str(DEFAULT_CHECKPOINT)
    for mode in ("with", "none"):
        counts = {label: (c["tp"], c["fn"]) for label, c in res[mode]["per_class"].items()}
        assert "siren" in counts and len(counts) == 14
        tp, fn = counts["siren"]
        assert tp + fn == 1  # the one labelled siren, found or missed
        assert all(tp + fn == 0 for label, (tp, fn) in counts.items() if label != "siren")
        assert 0.0 <= res[mode]["macro_f1"] <= 1.0
    text = capsys.readouterr().out
    assert "with the scenes' instructions" in text and "siren" in text
    # a model with an event branch (experiment v0.9): the instruction has nothing to move
    from export.bundle import load_checkpoint, save_weights_npz
    from export.model import add_event_branch

    model, meta = load_checkpoint(DEFAULT_CHECKPOINT)
    branch = save_weights_npz(add_event_branch(model), tmp_path / "branch.npz", meta)
    seen.clear()
    assert main(["--split", str(tmp_path / "dev"), "--checkpoint", str(branch),
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert seen == [True, False] and res["events_read_instruction"] is False
    assert res["with"] == res["none"] and "must agree" in capsys.readouterr().out


def test_a_bundle_of_another_model_is_refused(tmp_path, capsys):
    src = bundles.default_bundle_path()
    if src is None:
        pytest.skip("no default bundle in aim_edge/models/default (the shipped model)")
    _tiny_split(tmp_path / "dev")
    other = tmp_path / "other"
    shutil.copytree(src, other)
    m = json.loads((other / "manifest.json").read_text())
    for e in m["labels"]["events"]:
        if e["name"] == "siren":
            e["name"] = "police_siren"
    for per_label in m["thresholds"].values():  # events, confirm_chunks, rearm_s, ...
        if isinstance(per_label, dict) and "siren" in per_label:
            per_label["police_siren"] = per_label.pop("siren")
    (other / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SystemExit):
        main(["--split", str(tmp_path / "dev"), "--bundle", str(other)])
    assert "has no event label(s) ['siren']" in capsys.readouterr().err
