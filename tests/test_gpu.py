"""The CUDA-graph training step. Skipped without a CUDA device (CI has none); run on the GPU machine:
    python -m pytest -q tests/test_gpu.py
"""
import pytest
import torch

from training.config import RunConfig
from training.models import build_model
from training.step import TrainStep, make_optimizer, set_lr

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _pair(model="lvae"):
    cfg = RunConfig.make(model=model, layers=5, dataset="mnist", input_dim=784, epochs=1, grad_clip=4.0)
    torch.manual_seed(0)
    a = build_model(cfg).cuda().train()
    b = build_model(cfg).cuda().train()
    b.load_state_dict(a.state_dict())
    return cfg, a, b


@pytest.mark.parametrize("model", ["vae", "lvae"])
def test_graph_replay_equals_eager_steps(monkeypatch, model):
    # Without sampling noise both paths are deterministic and must agree step for step.
    monkeypatch.setattr(torch, "randn_like", lambda t, **kw: torch.zeros_like(t))
    cfg, a, b = _pair(model)
    eager = TrainStep(a, make_optimizer(a, cfg.lr, False), 256, grad_clip=4.0, graph=False)
    graph = TrainStep(b, make_optimizer(b, cfg.lr, True), 256, grad_clip=4.0, graph=True)
    g = torch.Generator(device="cuda").manual_seed(0)
    for i in range(12):  # 3 warm-up steps, capture, then replays
        x = torch.rand(256, 784, device="cuda", generator=g).bernoulli(generator=g)
        ea, gb = eager(x, i / 12), graph(x, i / 12)
        assert torch.allclose(ea.elbo, gb.elbo, rtol=1e-4, atol=1e-2), (i, ea.elbo, gb.elbo)
    assert graph.graph is not None, "the step was not captured"
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(ta.float(), tb.float(), rtol=1e-3, atol=1e-4), name


def test_learning_rate_change_after_capture_reaches_the_graph():
    cfg, _, b = _pair()
    opt = make_optimizer(b, cfg.lr, True)
    step = TrainStep(b, opt, 256, graph=True)
    set_lr(opt, cfg.lr, True)
    x = torch.rand(256, 784, device="cuda").bernoulli()
    for _ in range(5):
        step(x, 1.0)
    assert step.graph is not None
    set_lr(opt, 0.0, True)
    before = [p.detach().clone() for p in b.parameters()]
    step(x, 1.0)
    assert all(torch.equal(p0, p1) for p0, p1 in zip(before, b.parameters()))


def test_training_on_cuda_with_graphs_end_to_end(tmp_path):
    from training import checkpoint as ckpt
    from training.train import train
    run = train(RunConfig.make(model="lvae", layers=5, dataset="digits", epochs=3, batch_size=64, eval_every=1,
                          device="cuda", step_mode="graph"), tmp_path / "r", progress=False)
    hist = ckpt.read_history(run)
    assert [h["epoch"] for h in hist] == [1, 2, 3] and hist[-1]["train_elbo"] > hist[0]["train_elbo"]
    assert ckpt.load_model(run)[2] == 3


def test_group_graph_equals_each_model_stepped_eagerly(monkeypatch):
    """Two models captured in one CUDA graph (reproduce --group) step exactly like two eager models."""
    from training.step import GroupStep, ModelStep
    monkeypatch.setattr(torch, "randn_like", lambda t, **kw: torch.zeros_like(t))
    cfg, a, b = _pair("lvae")
    _, c, d = _pair("vae")
    eager = [ModelStep(m, make_optimizer(m, cfg.lr, False), 256) for m in (a, c)]
    group = GroupStep([ModelStep(m, make_optimizer(m, cfg.lr, True), 256) for m in (b, d)], graph=True)
    g = torch.Generator(device="cuda").manual_seed(0)
    for _ in range(8):
        xs = [torch.rand(256, 784, device="cuda", generator=g).bernoulli(generator=g) for _ in range(2)]
        for m, x in zip(eager, xs):
            m.load(x, 0.5)
            m.eager()
        group(xs, [0.5, 0.5])
    assert group.graph is not None
    for ea, gb in ((a, b), (c, d)):
        for (name, ta), tb in zip(ea.state_dict().items(), gb.state_dict().values()):
            assert torch.allclose(ta.float(), tb.float(), rtol=1e-3, atol=1e-4), name


def test_graph_replays_draw_fresh_noise():
    """Two replays on the same batch with the learning rate at 0 give different losses: each replay draws new
    samples (the graph does not freeze the noise of its capture)."""
    cfg, _, b = _pair()
    opt = make_optimizer(b, 0.0, True)
    step = TrainStep(b, opt, 256, graph=True)
    x = torch.rand(256, 784, device="cuda").bernoulli()
    for _ in range(5):
        step(x, 1.0)
    assert step.graph is not None
    first = float(step(x, 1.0).elbo)
    second = float(step(x, 1.0).elbo)
    assert first != second


def test_graph_and_eager_losses_agree_in_mean_within_their_standard_error():
    """Over many steps at lr 0 on one batch, graph and eager single-sample ELBOs are draws from one distribution."""
    import statistics
    cfg, a, b = _pair()
    eager = TrainStep(a, make_optimizer(a, 0.0, False), 256, graph=False)
    graph = TrainStep(b, make_optimizer(b, 0.0, True), 256, graph=True)
    x = torch.rand(256, 784, device="cuda", generator=torch.Generator(device="cuda").manual_seed(0)).bernoulli()
    ea = [float(eager(x, 1.0).elbo) for _ in range(200)]
    gb = [float(graph(x, 1.0).elbo) for _ in range(200)][5:]  # after warm-up and capture
    se = (statistics.variance(ea) / len(ea) + statistics.variance(gb) / len(gb)) ** 0.5
    assert abs(statistics.mean(ea) - statistics.mean(gb)) < 4 * se
    assert statistics.stdev(gb) > 0


def test_a_cpu_run_resumes_on_the_gpu_in_graph_mode(tmp_path):
    from dataclasses import replace

    from training import checkpoint as ckpt
    from training.train import train
    cfg = RunConfig.make(model="lvae", layers=3, dataset="digits", epochs=1, batch_size=64, device="cpu")
    run = train(cfg, tmp_path / "r", progress=False)
    train(replace(cfg, epochs=3, device="cuda", step_mode="graph"), run, resume=True, progress=False)
    assert ckpt.load_model(run)[2] == 3
    assert all(h["train_elbo"] == h["train_elbo"] for h in ckpt.read_history(run))  # no NaN
