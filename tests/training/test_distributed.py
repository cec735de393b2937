"""Two real processes over gloo, started by this test: an epoch's loss, accuracy and sample count are those of the
whole evaluation set (not an average of the ranks' means), and predictions gathered from both ranks come out in
input order, each with its own probabilities. tests/commands/test_ddp.py (slow) runs whole zoo commands."""

from __future__ import annotations

import csv
import json
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp

N, BATCH, CLASSES = 51, 16, 10  # uneven on purpose: 26 samples on rank 0 (16 + 10), 25 on rank 1 (16 + 9)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(N, 1, 8, 8, generator=g), torch.randint(0, CLASSES, (N,), generator=g)


def _model():
    from zoo import SoftmaxRegression

    torch.manual_seed(0)
    return SoftmaxRegression(num_classes=CLASSES, input_size=8).eval()


def _rank(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from datamodules.base import BatchIndexSampler
    from zoo.callbacks.predictions import PredictionsCSV

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        x, y = _data()
        model = _model()
        logged = {}
        model.log = lambda name, value, **kw: logged.__setitem__(name, [float(value), kw.get("sync_dist")])
        writer = PredictionsCSV(output=str(Path(out) / "predictions.csv"))
        # the zoo's own evaluation sharding: rank r takes every other sample
        sampler = BatchIndexSampler(N, BATCH, shuffle=False, num_replicas=2, rank=rank, even=False)
        with torch.no_grad():
            for index in sampler:
                model.model_step((x[index], y[index]), "val")
                writer.shares.append((index, model(x[index]).softmax(-1)))
        model._log_epoch("val")
        trainer = SimpleNamespace(log_dir=out, world_size=2, global_rank=rank,
                                  datamodule=SimpleNamespace(classes=[f"c{i}" for i in range(CLASSES)]))
        writer.on_predict_epoch_end(trainer, model)
        Path(out, f"rank{rank}.json").write_text(json.dumps(logged))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_log_the_whole_sets_metrics_and_predict_in_input_order(tmp_path):
    ranks = mp.spawn(_rank, args=(_free_port(), str(tmp_path)), nprocs=2, join=False)
    deadline = time.monotonic() + 120
    while not ranks.join(timeout=5):  # True once both have ended; raises if one failed
        if time.monotonic() > deadline:
            for process in ranks.processes:
                process.kill()
            raise AssertionError("the two ranks did not finish in 120 s")
    x, y = _data()
    with torch.no_grad():
        logits = _model()(x)
    expected = {"val/loss": torch.nn.functional.cross_entropy(logits, y).item(),
                "val/acc": (logits.argmax(-1) == y).float().mean().item(), "val/samples": float(N)}
    for rank in (0, 1):
        logged = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert set(logged) == set(expected), logged
        for name, value in expected.items():
            assert logged[name][0] == pytest.approx(value, abs=1e-6), (rank, name)
            assert logged[name][1] is True, name  # reduced over the ranks, identical on each
    with open(tmp_path / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    probabilities = logits.softmax(-1)
    assert [int(r["index"]) for r in rows] == list(range(N))
    for i, row in enumerate(rows):
        best = int(probabilities[i].argmax())
        assert row["class"] == f"c{best}"
        assert float(row["probability"]) == pytest.approx(probabilities[i, best].item(), abs=1e-6)
