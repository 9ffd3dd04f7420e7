"""The export tools check their arguments before loading a model (minutes of work)."""

import pytest

pytest.importorskip("torch", reason="torch is needed by export/: pip install -e .[export]")

from export import evaluate  # noqa: E402


@pytest.mark.parametrize("extra, message", [
    ([], "--checkpoint {tmp}/missing.pt: no such file or folder"),
    (["--calibrate-on", "{tmp}/dev.npz"], "--calibrate-on {tmp}/dev.npz: no such file"),
    (["--json", "{tmp}/no/dir/e.json"], "--json {tmp}/no/dir/e.json: folder {tmp}/no/dir does"
     " not exist"),
    (["--threads", "0"], "--threads 0: must be >= 1"),
    (["--target-fa-per-hour", "0"], "--target-fa-per-hour 0.0: must be > 0"),
    (["--speak-target-fa-per-hour", "-2"], "--speak-target-fa-per-hour -2.0: must be > 0"),
])
def test_evaluate_rejects_bad_arguments_before_loading(tmp_path, capsys, extra, message):
    ckpt = tmp_path / ("missing.pt" if not extra else "c.pt")
    if extra:
        ckpt.write_bytes(b"not read: the arguments fail first")
    (tmp_path / "test.npz").write_bytes(b"")
    argv = ["--checkpoint", str(ckpt), "--data", str(tmp_path / "test.npz")]
    with pytest.raises(SystemExit) as info:
        evaluate.main(argv + [a.format(tmp=tmp_path) for a in extra])
    assert info.value.code == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err


@pytest.mark.parametrize("flag, content, message", [
    ("--evaluation", "", "--evaluation {f}: not a JSON file (Expecting value"),
    ("--evaluation", "[1, 2]", "--evaluation {f}: expected a JSON object, got list"),
    ("--provenance", "{oops", "--provenance {f}: not a JSON file"),
    ("--speak-target-fa-per-hour", None, "--speak-target-fa-per-hour 0.0: must be > 0"),
])
def test_bundle_rejects_bad_json_and_rates_before_loading(tmp_path, capsys, flag, content,
                                                          message):
    from export import bundle

    ckpt = tmp_path / "c.pt"
    ckpt.write_bytes(b"not read: the arguments fail first")
    f = tmp_path / "x.json"
    if content is not None:
        f.write_text(content)
    value = str(f) if content is not None else "0"
    with pytest.raises(SystemExit) as info:
        bundle.main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "b"), flag, value])
    assert info.value.code == 2
    assert message.format(f=f) in capsys.readouterr().err
