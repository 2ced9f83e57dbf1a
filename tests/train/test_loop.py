"""eventsp.train.loop: DDP under torchrun, loaders, checkpoints and resume, metric logs."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eventsp.train import loop  # noqa: E402

from support import REPO_ROOT  # noqa: E402

DDP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    from torch.utils.data import TensorDataset
    from eventsp.train import loop

    torch.set_num_threads(1)


    def step(env, out):
        torch.manual_seed(0)  # same initial weights on every rank
        model = torch.nn.Linear(3, 2)
        w0 = [p.detach().clone().tolist() for p in model.parameters()]
        ddp = loop.wrap_ddp(model, env)
        xs = torch.arange(8 * 3, dtype=torch.float32).reshape(8, 3) / 10
        ys = torch.arange(8, dtype=torch.float32).reshape(8, 1).repeat(1, 2) / 8
        ds = TensorDataset(torch.arange(8), xs, ys)
        loader = loop.make_loader(ds, 4, env, shuffle=True, seed=3)
        loop.set_epoch(loader, 0)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.5)
        (idx, x, y), = list(loader)
        loss = ((ddp(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        total = loop.all_reduce_sum([len(idx), 1.0], env)
        result = {
            "rank": env.rank, "world": env.world_size, "backend": env.backend,
            "indices": idx.tolist(), "w0": w0, "total": total,
            "w1": [p.detach().tolist() for p in loop.unwrap(ddp).parameters()],
        }
        with open(f"{out}/rank{env.rank}.json", "w") as f:
            json.dump(result, f)


    # As in the trainers, the DDP model lives in a function; teardown collects it (it sits in a
    # reference cycle) while the group is alive. A DDP model alive at interpreter exit holds the
    # gloo group, whose threads then die in static destruction ("terminate called without an
    # active exception", SIGABRT in about 1 run in 10 on a loaded 2-core machine).
    env = loop.setup_distributed("cpu")
    try:
        step(env, sys.argv[1])
    finally:
        loop.teardown_distributed(env)
    """
)


@pytest.mark.slow
def test_ddp_two_cpu_processes_average_gradients(tmp_path):
    script = tmp_path / "ddp_step.py"
    script.write_text(DDP_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(tmp_path),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (r0["world"], r0["backend"], r1["rank"]) == (2, "gloo", 1)
    # The DistributedSampler gave each rank its own half of the data.
    assert sorted(r0["indices"] + r1["indices"]) == list(range(8))
    assert r0["total"] == r1["total"] == [8.0, 2.0]
    # Both ranks end with identical weights ...
    assert r0["w1"] == r1["w1"]
    # ... equal to one SGD step on the gradient averaged over the two ranks' batches.
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        for p, w in zip(model.parameters(), r0["w0"], strict=True):
            p.copy_(torch.tensor(w))
    xs = torch.arange(8 * 3, dtype=torch.float32).reshape(8, 3) / 10
    ys = torch.arange(8, dtype=torch.float32).reshape(8, 1).repeat(1, 2) / 8
    grads = []
    for r in (r0, r1):
        model.zero_grad()
        idx = torch.tensor(r["indices"])
        ((model(xs[idx]) - ys[idx]) ** 2).mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for p, g0, g1, w1 in zip(model.parameters(), *grads, r0["w1"], strict=True):
        expected = p.detach() - 0.5 * (g0 + g1) / 2
        np.testing.assert_allclose(np.array(w1), expected.numpy(), rtol=1e-5, atol=1e-6)
        only_rank0 = p.detach() - 0.5 * g0
        assert not np.allclose(np.array(w1), only_rank0.numpy(), atol=1e-4)


def test_single_process_without_world_size(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    env = loop.setup_distributed("cpu")
    assert (env.rank, env.world_size, env.distributed, env.is_main) == (0, 1, False, True)
    model = torch.nn.Linear(2, 2)
    assert loop.wrap_ddp(model, env) is model
    assert loop.all_reduce_sum([1, 2.5], env) == [1.0, 2.5]
    loop.teardown_distributed(env)
    with pytest.raises(ValueError, match="device 'tpu'"):
        loop.setup_distributed("tpu")


def test_loader_shuffles_reproducibly_with_seed():
    ds = torch.utils.data.TensorDataset(torch.arange(20))
    env = loop.DistEnv()

    def order(seed):
        return torch.cat([b[0] for b in loop.make_loader(ds, 6, env, shuffle=True, seed=seed)])

    assert order(1).tolist() == order(1).tolist()
    assert sorted(order(1).tolist()) == list(range(20))
    assert order(1).tolist() != order(2).tolist()


def _train_steps(model, opt, sched, n):
    losses = []
    for _ in range(n):
        x = torch.randn(5, 4)
        noise = 0.01 * float(np.random.rand()) + 0.01 * random.random()  # noqa: NPY002
        loss = (model(x) ** 2).mean() + noise
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def _make(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    return model, opt, sched


def test_checkpoint_resume_continues_exactly(tmp_path):
    loop.seed_everything(7)
    model, opt, sched = _make()
    _train_steps(model, opt, sched, 3)
    ckpt = loop.save_checkpoint(
        tmp_path / "run" / "last.pt",
        model=model,
        optimizer=opt,
        scheduler=sched,
        epoch=3,
        best_metric=0.75,
        state={"stage": "convert-1", "bad_epochs": 2, "thresholds": torch.ones(3)},
    )
    assert [p.name for p in ckpt.parent.iterdir()] == ["last.pt"]  # no temporary left over
    expected = _train_steps(model, opt, sched, 4)
    final = [p.detach().clone() for p in model.parameters()]

    loop.seed_everything(999)  # disturb every generator; resume must restore them
    model2, opt2, sched2 = _make(seed=5)
    info = loop.load_checkpoint(ckpt, model=model2, optimizer=opt2, scheduler=sched2)
    assert (info.epoch, info.best_metric) == (3, 0.75)
    assert info.state["stage"] == "convert-1"
    assert info.state["bad_epochs"] == 2
    assert torch.equal(info.state["thresholds"], torch.ones(3))
    got = _train_steps(model2, opt2, sched2, 4)
    assert got == expected
    for a, b in zip(final, model2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        loop.load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        loop.load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="version None"):
        loop.load_checkpoint(other)


def test_metrics_log_writes_csv_jsonl_and_png(tmp_path):
    log = loop.MetricsLog(tmp_path)
    log.log(epoch=0, stage="ann", val_acc=0.5)
    log.log(epoch=1, stage="ann", val_acc=0.6, loss=np.float32(1.5))
    log.log(epoch=2, stage="snn-1", val_acc=0.7)
    csv_lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert csv_lines[0] == "epoch,stage,val_acc,loss"
    assert csv_lines[2] == "1,ann,0.6,1.5"
    assert len(csv_lines) == 4
    png = log.plot("epoch", ["val_acc", "loss"], stage_key="stage")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    resumed = loop.MetricsLog(tmp_path, resume=True)
    assert [r["val_acc"] for r in resumed.rows] == [0.5, 0.6, 0.7]
    resumed.log(epoch=3, stage="final", val_acc=0.8)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 4
    resumed.truncate(2)  # resuming from a checkpoint taken after two rows
    assert [r["epoch"] for r in loop.MetricsLog(tmp_path, resume=True).rows] == [0, 1]
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 3
    fresh = loop.MetricsLog(tmp_path)
    assert fresh.rows == []
    assert (tmp_path / "metrics.jsonl").read_text() == ""


def test_progress_only_on_rank_zero():
    items = [1, 2, 3]
    assert loop.progress(items, loop.DistEnv(rank=1, world_size=2)) is items
    bar = loop.progress(items, loop.DistEnv(), desc="x", enabled=True)
    assert list(bar) == items
    with pytest.raises(ValueError, match="rank 2 of world size 2"):
        loop.DistEnv(rank=2, world_size=2)
