"""The run folder's callbacks: a command that trained nothing leaves no folder, a failed evaluation no event file."""

from __future__ import annotations

from tests.helpers import QUIET, zoo


def test_a_fit_that_trains_nothing_leaves_no_folder(tmp_path, fashion):
    out = zoo(["fit", "--model", "MLP", *fashion, "--trainer.max_epochs", "0"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not (tmp_path / "lightning_logs").exists()


def test_a_failed_predict_adds_no_event_file(tmp_path, fashion):
    out = zoo(["fit", "--model", "MLP", *fashion, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "2"],
              tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = (tmp_path / "lightning_logs").glob("*/version_*")
    before = sorted(run.iterdir())
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_text("not an image")
    out = zoo(["predict", "--ckpt_path", "last", "--data.predict_path", str(junk), *QUIET], tmp_path)
    assert out.returncode == 2 and "none of its files is a readable image" in out.stderr
    assert sorted(run.iterdir()) == before
