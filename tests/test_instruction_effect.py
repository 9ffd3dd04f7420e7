"""``python -m benchmarks.instruction_effect``: the event head scored with and without the
scenes' instructions, the way the runtime alerts."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("torch", reason="torch is needed to run a checkpoint: pip install -e .[export]")
from test_eval_harness import _tiny_split  # noqa: E402

from aim_edge import bundles  # noqa: E402
from benchmarks.instruction_effect import DEFAULT_CHECKPOINT, main  # noqa: E402


def test_counts_with_and_without_the_instruction(tmp_path, capsys):
    if bundles.default_bundle_path() is None:
        pytest.skip("no default bundle in aim_edge/models/default (the shipped model)")
    _tiny_split(tmp_path / "dev")
    out = tmp_path / "effect.json"
    assert main(["--split", str(tmp_path / "dev"), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["checkpoint"] == DEFAULT_CHECKPOINT
    for mode in ("with", "none"):
        counts = res[mode]["tp_fn_fp"]
        assert "siren" in counts and len(counts) == 14
        tp, fn, _ = counts["siren"]
        assert tp + fn == 1  # the one labelled siren, found or missed
        assert all(tp + fn == 0 for label, (tp, fn, _) in counts.items() if label != "siren")
        assert 0.0 <= res[mode]["macro_f1"] <= 1.0
    text = capsys.readouterr().out
    assert "with the scenes' instructions" in text and "siren" in text


def test_a_bundle_of_another_model_is_refused(tmp_path, capsys):
    src = bundles.default_bundle_path()
    if src is None:
        pytest.skip("no default bundle in aim_edge/models/default (the shipped model)")
    _tiny_split(tmp_path / "dev")
    other = tmp_path / "other"
    shutil.copytree(src, other)
    m = json.loads((other / "manifest.json").read_text())
    del m["thresholds"]["events"]["siren"]
    (other / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SystemExit):
        main(["--split", str(tmp_path / "dev"), "--bundle", str(other)])
    assert "no thresholds for ['siren']" in capsys.readouterr().err
