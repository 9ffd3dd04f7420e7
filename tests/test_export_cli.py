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
