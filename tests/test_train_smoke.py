"""Smoke run of the training pipeline: generate -> train a few steps -> bundle -> load.

The full runs (hours of data, tens of minutes of training) are documented in
benchmarks/results/model.json; this keeps every stage of that pipeline from rotting.
"""

import json
import shutil

import pytest

torch = pytest.importorskip("torch", reason="torch is needed by export/: pip install -e .[export]")

from aim_edge.bundle import load_bundle  # noqa: E402
from export import train, train_decide  # noqa: E402
from export.bundle import build_bundle, load_checkpoint  # noqa: E402
from export.data import cli as data_cli  # noqa: E402


def test_generate_train_bundle_load(tmp_path, monkeypatch, capsys):
    missing = [t for t in ("espeak-ng", "flite", "festival", "sox") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/install-system-deps.sh test)")
    data = tmp_path / "data"
    assert data_cli.main(["build", "--out", str(data), "--minutes", "1", "--seed", "3",
                          "--split", "train", "--stream-seconds", "30", "30", "--no-progress",
                          "--tts-cache", str(tmp_path / "tts")]) == 0
    out = tmp_path / "ckpt"
    train.main(["--config", "export/configs/smoke.json", "--data", str(data), "--out", str(out),
                "--steps", "4", "--threads", "1", "--ckpt-every", "2",
                "--cache", str(tmp_path / "features")])
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    dev = [r for r in log if r["split"] == "dev"]
    assert dev and all(r["loss"] == r["loss"] and r["loss"] > 0 for r in dev)  # finite, > 0
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()

    # resume continues from the saved step
    train.main(["--config", "export/configs/smoke.json", "--data", str(data), "--out", str(out),
                "--steps", "6", "--threads", "1", "--resume",
                "--cache", str(tmp_path / "features")])
    model, meta = load_checkpoint(out / "last.pt")
    assert meta["step"] == 6
    assert meta["events_safety"]["smoke_alarm"] is True

    # a step whose loss is not finite is skipped and logged, not written into every weight
    real, calls = train.compute_losses, []

    def nan_first(*args, **kwargs):
        loss, parts = real(*args, **kwargs)
        calls.append(1)
        return (loss * float("nan"), parts) if len(calls) == 1 else (loss, parts)

    monkeypatch.setattr(train, "compute_losses", nan_first)
    train.main(["--config", "export/configs/smoke.json", "--data", str(data), "--out", str(out),
                "--steps", "8", "--threads", "1", "--resume",
                "--cache", str(tmp_path / "features")])
    monkeypatch.setattr(train, "compute_losses", real)
    after, meta = load_checkpoint(out / "last.pt")
    assert meta["step"] == 8
    assert all(torch.isfinite(v).all() for v in after.state_dict().values()
               if v.is_floating_point())
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "skipped_nonfinite" in r] == [6]

    # the decide head retrains on the frozen encoder: encoder and CTC head stay bit-identical
    head = tmp_path / "decide"
    argv = ["--init", str(out / "last.pt"), "--data", str(data), "--dev", str(data),
            "--out", str(head), "--steps", "3", "--threads", "1", "--ckpt-every", "2",
            "--dev-batches", "1", "--cache", str(tmp_path / "features")]
    train_decide.main(argv)
    assert "reusing" not in capsys.readouterr().out
    retrained, dmeta = load_checkpoint(head / "last.pt")
    assert dmeta["step"] == 3 and dmeta["decide_only"]["init"] == str(out / "last.pt")
    before, after_ = after.state_dict(), retrained.state_dict()
    frozen = [k for k in before if not k.startswith(train_decide.DECIDE_PARAMS)]
    assert "ctc_head.weight" in frozen and "blocks.0.qkv.weight" in frozen
    assert all(torch.equal(before[k], after_[k]) for k in frozen)
    moved = [k for k in before if k.startswith(train_decide.DECIDE_PARAMS)
             and not torch.equal(before[k], after_[k])]
    assert "event_head.weight" in moved and "speak_head.weight" in moved
    dlog = [json.loads(line) for line in (head / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in dlog if r["split"] == "dev"] == [2, 3]
    # resume reuses the encodings cache (same encoder, same streams) and continues
    train_decide.main([*argv[:argv.index("--steps")], "--steps", "4",
                       *argv[argv.index("--steps") + 2:], "--resume"])
    assert f"reusing {head / 'encodings.npz'}" in capsys.readouterr().out
    assert load_checkpoint(head / "last.pt")[1]["step"] == 4

    # --event-branch: only the events' own branch trains; every weight of --init but the
    # event head (speak-now, intent, encoder, CTC) stays bit for bit
    branch = tmp_path / "branch"
    train_decide.main(["--init", str(out / "last.pt"), "--event-branch", "--data", str(data),
                       "--dev", str(data), "--out", str(branch), "--steps", "2", "--threads", "1",
                       "--ckpt-every", "2", "--dev-batches", "1",
                       "--cache", str(tmp_path / "features")])
    grown, bmeta = load_checkpoint(branch / "last.pt")
    assert grown.cfg.event_branch and bmeta["decide_only"]["event_branch"] is True
    grown_w = grown.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], grown_w[k]))
    assert changed == ["event_head.bias", "event_head.weight"]
    assert "event_query" in grown_w and "event_decide.0.att.in_proj_weight" in grown_w
    # resuming it without --event-branch is refused by name, not a state-dict error
    with pytest.raises(SystemExit, match="is an --event-branch run; resume it with"):
        train_decide.main(["--init", str(out / "last.pt"), "--data", str(data), "--dev",
                           str(data), "--out", str(branch), "--steps", "3", "--threads", "1",
                           "--dev-batches", "1", "--cache", str(tmp_path / "features"),
                           "--resume"])

    bundle_dir = build_bundle(model, tmp_path / "bundle", name="smoke",
                              events_safety=meta["events_safety"],
                              gate={"decision_agreement": 0.0})
    bundle = load_bundle(bundle_dir)
    assert bundle.events[0].name == "smoke_alarm" and bundle.events[0].safety
    assert {a.precision for a in bundle.artifacts} == {"fp32", "int8-dynamic"}


def test_every_shipped_training_config_loads(tmp_path):
    """The configs named in model.json's commands: a typo'd key fails here, not an hour in."""
    from pathlib import Path

    configs = sorted(Path("export/configs").glob("*.json"))
    assert len(configs) >= 10
    for path in configs:
        cfg = train.TrainConfig.load(path)
        assert cfg.lr > 0 and cfg.batch >= 1, path
    bad = tmp_path / "bad.json"
    bad.write_text('{"lr": 0.001, "encoder_dropuot": 0.1}')
    with pytest.raises(SystemExit, match="encoder_dropuot"):
        train.TrainConfig.load(bad)
