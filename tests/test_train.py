"""Training loop, run folder, checkpoints and resume."""
import json
import math

import pytest
import torch
from conftest import EPOCHS, digits_cfg

from training import checkpoint as ckpt
from training.errors import CheckpointError, TrainingError, UserError
from training.train import train


def test_run_folder_contents(digits_runs):
    run = digits_runs["lvae"]
    hist = ckpt.read_history(run)
    assert [h["epoch"] for h in hist] == list(range(1, EPOCHS + 1))
    for h in hist:
        assert {"epoch", "beta", "train_elbo", "recon", "kl_per_layer", "seconds"} <= set(h)
        assert len(h["kl_per_layer"]) == 3
    evals = [h for h in hist if "test_elbo" in h]
    assert [h["epoch"] for h in evals] == [5, 10, 15]
    for h in evals:
        assert len(h["active_units"]) == 3
        assert [len(u) for u in h["kl_per_unit"]] == [16, 8, 8]
        assert sum(map(sum, h["kl_per_unit"])) == pytest.approx(sum(h["test_kl_per_layer"]), rel=1e-4)
    # snapshots: epoch 0, every 5 epochs; fixed points, float16, one tensor per layer
    assert ckpt.snapshot_epochs(run) == [0, 5, 10, 15]
    snap = ckpt.load_snapshot(run, 15)
    points = ckpt.load_snapshot_points(run)
    assert [s.shape for s in snap] == [(360, 16), (360, 8), (360, 8)]
    assert points["image"].dtype == torch.uint8 and points["image"].shape == (360, 64)
    assert json.loads((run / ckpt.CONFIG).read_text())["input_dim"] == 64


def test_beta_in_history_follows_the_warmup_schedule(digits_runs):
    betas = [h["beta"] for h in ckpt.read_history(digits_runs["vae"])]
    assert betas[:6] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert all(b == 1.0 for b in betas[5:])


def test_a_warm_up_per_step_raises_beta_every_step(tmp_path, monkeypatch):
    """--warmup-per-step: beta rises every step (Efficient-VDVAE), 0 at the first and 1 from step warmup x
    batches; the history records each epoch's mean beta."""
    from training.distributions import warmup_beta_at_step
    from training.step import GroupStep
    assert [warmup_beta_at_step(s, 4) for s in (0, 1, 4, 9)] == [0.0, 0.25, 1.0, 1.0]
    assert warmup_beta_at_step(0, 0) == 1.0
    seen: list[float] = []
    call = GroupStep.__call__
    monkeypatch.setattr(GroupStep, "__call__", lambda self, xs, betas: seen.append(betas[0]) or call(self, xs, betas))
    cfg = digits_cfg("vae", layers=2, epochs=3, warmup_epochs=2, warmup_per_step=True, batch_size=90)
    run = train(cfg, tmp_path / "r", progress=False)
    n = len(seen) // 3  # batches an epoch
    assert n > 1 and len(seen) == 3 * n
    assert seen == pytest.approx([min(1.0, s / (2 * n)) for s in range(3 * n)])
    betas = [h["beta"] for h in ckpt.read_history(run)]
    assert betas == pytest.approx([sum(seen[:n]) / n, sum(seen[n:2 * n]) / n, 1.0])


def test_training_improves_the_elbo(digits_runs):
    hist = ckpt.read_history(digits_runs["lvae"])
    assert hist[-1]["train_elbo"] > hist[0]["train_elbo"] + 5


def test_checkpoint_round_trip_gives_identical_outputs(digits_runs, digits_test, tmp_path):
    model, cfg, epoch = ckpt.load_model(digits_runs["lvae"])
    assert epoch == EPOCHS and not model.training
    ckpt.save_config(tmp_path, cfg)
    ckpt.save_checkpoint(tmp_path, model, None, epoch, {})
    again, _, _ = ckpt.load_model(tmp_path)
    x = digits_test[:50]
    with torch.inference_mode():
        for a, b in zip(model.posterior(x, mean_path=True), again.posterior(x, mean_path=True)):
            assert torch.equal(a.z, b.z)
        torch.manual_seed(0)
        lp1 = model(x).log_px
        torch.manual_seed(0)
        lp2 = again(x).log_px
    assert torch.equal(lp1, lp2)


def test_resume_continues_exactly(tmp_path):
    cfg = digits_cfg("lvae", epochs=4, eval_every=2, snapshot_every=2, checkpoint_every=1)
    straight = train(cfg, tmp_path / "straight", progress=False)
    half = train(digits_cfg("lvae", epochs=2, eval_every=2, snapshot_every=2, checkpoint_every=1),
                 tmp_path / "resumed", progress=False)
    train(cfg, half, resume=True, progress=False)
    a, _, ea = ckpt.load_model(straight)
    b, _, eb = ckpt.load_model(half)
    assert ea == eb == 4
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(ta, tb), name
    h1, h2 = ckpt.read_history(straight), ckpt.read_history(half)
    assert [h["epoch"] for h in h2] == [1, 2, 3, 4]
    assert [h["train_elbo"] for h in h1] == [h["train_elbo"] for h in h2]


def test_resume_drops_torn_and_uncheckpointed_history_lines(tmp_path):
    run = train(digits_cfg("vae", epochs=2, checkpoint_every=1), tmp_path / "r", progress=False)
    with open(run / ckpt.HISTORY, "a") as f:
        f.write(json.dumps({"epoch": 3, "beta": 1.0}) + "\n")  # an epoch whose checkpoint never landed
        f.write('{"epoch": 4, "be')                              # a torn line
    train(digits_cfg("vae", epochs=3, checkpoint_every=1), run, resume=True, progress=False)
    hist = ckpt.read_history(run)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert "train_elbo" in hist[2]


def test_new_run_refuses_a_folder_that_holds_files(digits_runs):
    with pytest.raises(UserError, match="--resume"):
        train(digits_cfg("lvae"), digits_runs["lvae"], progress=False)


def test_non_finite_loss_stops_with_the_epoch_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from training.models import LatentHierarchy
    real = LatentHierarchy.loss
    calls = {"n": 0}

    def poisoned(model, x, beta, iw_samples=1, mc_samples=1, generator=None):
        calls["n"] += 1
        loss, stats = real(model, x, beta, iw_samples, mc_samples, generator)
        if calls["n"] > 22 * 2:  # 22 batches an epoch: poison epoch 3 on (every step skipped, 22 > skip_limit)
            loss = loss * float("nan")
            stats.elbo = stats.elbo * float("nan")
        return loss, stats

    monkeypatch.setattr(LatentHierarchy, "loss", poisoned)
    run = tmp_path / "nan"
    with pytest.raises(TrainingError, match=r"epoch 3: .*NaN.*epoch 2\)"):
        train(digits_cfg("lvae", epochs=5, checkpoint_every=1), run, progress=False)
    model, _, epoch = ckpt.load_model(run)
    assert epoch == 2
    assert [h["epoch"] for h in ckpt.read_history(run)] == [1, 2]


def test_iw_training_minimises_minus_l_k_from_the_log_weights(tmp_path):
    """K = 3: the loss trained on is -L_3 = -log (1/3) sum_k w_k per image, the K weights of an image taken
    from its own 3 samples (Burda et al. 2016, eq. 8), computed here by hand from the forward pass's log
    weights (issue 28's review: the test asserted only train_elbo < 0, which cannot fail)."""
    from training.models import build_model
    from training.objectives import log_importance_weights, training_loss
    torch.manual_seed(0)
    model = build_model(digits_cfg("vae", input_dim=64)).eval()
    x = torch.bernoulli(torch.full((7, 64), 0.3))
    loss, _ = training_loss(model, x, 1.0, iw_samples=3, generator=torch.Generator().manual_seed(5))
    log_w = log_importance_weights(model(x, n_samples=3, generator=torch.Generator().manual_seed(5)))
    per_image = log_w.view(3, 7)  # sample k of image b is row k * 7 + b, as x.repeat lays them out
    l3 = torch.logsumexp(per_image, dim=0) - math.log(3)
    assert loss.item() == pytest.approx(-l3.mean().item(), rel=1e-6)
    assert loss.item() < -per_image.mean().item()  # -L_3 below -ELBO: the IW bound is the tighter one
    run = train(digits_cfg("vae", epochs=1, iw_samples=3), tmp_path / "iw", progress=False)
    assert len(ckpt.read_history(run)) == 1  # and a run trains on it end to end


def test_pickle_checkpoints_are_refused_without_being_unpickled(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    run = tmp_path / "evil"
    run.mkdir()
    ckpt.save_config(run, digits_cfg("lvae", input_dim=64))
    (run / "model.pt").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="pickle"):
        ckpt.load_model(run)
    assert not marker.exists()


@pytest.mark.parametrize("damage,match", [
    ("truncate", "not a readable safetensors"),
    ("nan", "NaN"),
    ("shape", "shape|do not fit"),
    ("config_model", "model must be one of"),
    ("config_missing", "missing the key"),
    ("config_unknown", "unknown keys"),
    ("config_json", "not valid JSON"),
    ("config_version", "format_version 1"),
])
def test_broken_run_folders_give_one_clear_error(digits_runs, tmp_path, damage, match):
    import shutil
    run = tmp_path / "broken"
    shutil.copytree(digits_runs["vae"], run)
    cfg = json.loads((run / ckpt.CONFIG).read_text())
    if damage == "truncate":
        data = (run / ckpt.CHECKPOINT).read_bytes()
        (run / ckpt.CHECKPOINT).write_bytes(data[: len(data) // 2])
    elif damage == "nan":
        model, cfg_obj, epoch = ckpt.load_model(run)
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
        ckpt.save_checkpoint(run, model, None, epoch, {})
    elif damage == "shape":
        cfg["arch"]["latent_sizes"] = [16, 8, 9]
    elif damage == "config_model":
        cfg["model"] = "gan"
    elif damage == "config_missing":
        del cfg["input_dim"]
    elif damage == "config_unknown":
        cfg["colour"] = "blue"
    elif damage == "config_version":  # a run from before the model changed shape
        cfg["format_version"] = 1
    if damage.startswith("config_") or damage == "shape":
        (run / ckpt.CONFIG).write_text(json.dumps(cfg))
    if damage == "config_json":
        (run / ckpt.CONFIG).write_text("{not json")
    with pytest.raises(CheckpointError, match=match) as e:
        ckpt.load_model(run)
    assert "\n" not in str(e.value)


def _lasagne_reference_step(params, state, lr, t, eps=1e-4, max_norm=4.0, max_value=0.9, b1=0.9, b2=0.999):
    """The authors' update written out from Lasagne's source, one parameter at a time in float64:
    total_norm_constraint, element-wise clip, then lasagne.updates.adam."""
    grads = [p.grad.double() for p in params]
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    grads = [g * (torch.clamp(norm, max=max_norm) / (norm + 1e-7)) for g in grads]
    grads = [g.clamp(-max_value, max_value) for g in grads]
    a_t = lr * (1 - b2 ** t) ** 0.5 / (1 - b1 ** t)
    with torch.no_grad():
        for p, g in zip(params, grads):
            m, v = state.setdefault(p, [torch.zeros_like(g), torch.zeros_like(g)])
            m.mul_(b1).add_((1 - b1) * g)
            v.mul_(b2).add_((1 - b2) * g * g)
            p.copy_((p.double() - a_t * m / (v.sqrt() + eps)).float())


def test_static_buffer_step_equals_the_authors_update_written_out(tmp_path):
    """TrainStep (the code a CUDA graph captures) computes exactly the authors' update: Lasagne's Adam
    (epsilon 1e-4 on the root of the raw second moment), norm clipping at 4, element clipping at 0.9."""
    from training.models import build_model
    from training.objectives import training_loss
    from training.step import TrainStep, make_optimizer

    cfg = digits_cfg("lvae", input_dim=64)
    assert (cfg.adam_eps, cfg.grad_clip, cfg.grad_clip_value) == (1e-4, 4.0, 0.9)  # the authors' values by default
    torch.manual_seed(0)
    a = build_model(cfg)
    b = build_model(cfg)
    b.load_state_dict(a.state_dict())
    # Thresholds low enough that both clips act on these small batches (at 4 / 0.9 they rarely would).
    max_norm, max_value = 12.0, 0.3
    step = TrainStep(a, make_optimizer(a, cfg.lr, eps=cfg.adam_eps), batch_size=32, grad_clip=max_norm,
                     grad_clip_value=max_value)
    state: dict = {}
    g = torch.Generator().manual_seed(1)
    clipped, norms = 0, []
    for i in range(6):
        x, beta = torch.rand(32, 64, generator=g).bernoulli(generator=g), i / 4
        torch.manual_seed(i)
        sa = step(x, beta)
        torch.manual_seed(i)
        loss, sb = training_loss(b, x, beta)
        b.zero_grad()
        loss.backward()
        norm = float(torch.sqrt(sum((p.grad ** 2).sum() for p in b.parameters())))
        norms.append(norm)
        clipped += sum(int((p.grad.abs() * min(1.0, max_norm / norm) > max_value).sum()) for p in b.parameters())
        _lasagne_reference_step(list(b.parameters()), state, cfg.lr, i + 1, max_norm=max_norm, max_value=max_value)
        assert torch.allclose(sa.elbo, sb.elbo, rtol=1e-5)
    assert clipped > 0 and max(norms) > max_norm, (clipped, norms)  # both clips were exercised
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(ta, tb, atol=2e-6), name


def test_lasagne_adam_differs_from_torch_adam_only_by_the_epsilon_schedule():
    """Lasagne's Adam is torch's Adam with epsilon eps / sqrt(1 - b2^t) at step t: equal when torch's
    epsilon follows that schedule, and not equal with a fixed one (so the difference is real at 1e-4)."""
    from training.optim import LasagneAdam

    torch.manual_seed(0)
    w0 = torch.randn(50) * 1e-3
    grads = [torch.randn(50) * 1e-4 for _ in range(20)]  # tiny gradients: where epsilon matters

    def run(opt_factory, eps_schedule=None):
        w = w0.clone().requires_grad_()
        opt = opt_factory([w])
        for t, gr in enumerate(grads, 1):
            if eps_schedule:
                opt.param_groups[0]["eps"] = eps_schedule(t)
            w.grad = gr.clone()
            opt.step()
        return w.detach()

    ours = run(lambda p: LasagneAdam(p, lr=1e-3, eps=1e-4))
    scheduled = run(lambda p: torch.optim.Adam(p, lr=1e-3, eps=1e-4), lambda t: 1e-4 / (1 - 0.999 ** t) ** 0.5)
    fixed = run(lambda p: torch.optim.Adam(p, lr=1e-3, eps=1e-4))
    same, differ = (ours - scheduled).abs().max(), (ours - fixed).abs().max()
    assert same < 1e-7 and differ > 100 * same, (same, differ)


@pytest.mark.parametrize("on_device", [False, True])
def test_a_non_finite_step_changes_nothing_and_is_counted(on_device):
    """A step with a NaN gradient is skipped: weights, Adam moments and BN statistics stay as they were,
    whether the skip is decided on the host (eager) or on the device (what a CUDA graph runs)."""
    from training.models import build_model
    from training.step import ModelStep, make_optimizer

    cfg = digits_cfg("lvae", input_dim=64)
    torch.manual_seed(0)
    model = build_model(cfg)
    opt = make_optimizer(model, cfg.lr)
    step = ModelStep(model, opt, 32, grad_clip=cfg.grad_clip, grad_clip_value=cfg.grad_clip_value)
    step.load(torch.rand(32, 64).bernoulli(), 1.0)
    step.eager()  # one good step, so Adam has moments to protect
    before = {k: v.clone() for k, v in model.state_dict().items()}
    moments = [s["exp_avg"].clone() for s in opt.state.values()]
    x = torch.rand(32, 64).bernoulli()
    x[0, 0] = float("nan")
    step.load(x, 1.0)
    opt.zero_grad(set_to_none=True)
    _, ok = step.step(on_device=on_device)
    assert not bool(ok) and int(step.skipped) == 1 and int(step.streak) == 1
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            assert torch.equal(v, before[k]), k
    assert all(torch.equal(m, s["exp_avg"]) for m, s in zip(moments, opt.state.values()))
    step.load(torch.rand(32, 64).bernoulli(), 1.0)
    opt.zero_grad(set_to_none=True)
    _, ok = step.step(on_device=on_device)
    assert bool(ok) and int(step.streak) == 0 and int(step.max_streak) == 1


def test_the_on_device_step_equals_the_host_decided_step():
    """The masked update a CUDA graph captures computes the same good steps as the eager path."""
    from training.models import build_model
    from training.step import ModelStep, make_optimizer
    cfg = digits_cfg("lvae", input_dim=64)
    torch.manual_seed(0)
    a, b = build_model(cfg), build_model(cfg)
    b.load_state_dict(a.state_dict())
    steps = [ModelStep(m, make_optimizer(m, cfg.lr), 32, grad_clip=cfg.grad_clip, grad_clip_value=cfg.grad_clip_value)
             for m in (a, b)]
    g = torch.Generator().manual_seed(2)
    for i in range(5):
        x = torch.rand(32, 64, generator=g).bernoulli(generator=g)
        for s, on_device in zip(steps, (False, True)):
            s.load(x, 1.0)
            s.optimizer.zero_grad(set_to_none=True)
            torch.manual_seed(i)
            s.step(on_device=on_device)
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(ta.float(), tb.float(), atol=1e-6), name


def test_graph_step_mode_falls_back_to_eager_on_cpu(tmp_path, capsys):
    run = train(digits_cfg("vae", epochs=1, step_mode="graph"), tmp_path / "g", progress=False)
    assert "needs a CUDA device" in capsys.readouterr().err
    assert ckpt.load_model(run)[2] == 1


@pytest.mark.slow
def test_compiled_step_equals_the_eager_step(monkeypatch):
    """step_mode=compile (torch.compile of forward and backward) computes the eager step's loss and gradients."""
    import torch._inductor.config as inductor_config

    from training.models import build_model
    from training.step import TrainStep, make_optimizer

    monkeypatch.setattr(inductor_config, "fallback_random", True)  # eager's random numbers inside compiled code
    cfg = digits_cfg("lvae", input_dim=64)
    torch.manual_seed(0)
    a, b = build_model(cfg), build_model(cfg)
    b.load_state_dict(a.state_dict())
    # lr 0: the weights stay equal, so every step compares forward and backward alone (compile
    # touches nothing else; Adam would amplify the sign of near-zero rounding differences).
    opt_a, opt_b = make_optimizer(a, 0.0, False), make_optimizer(b, 0.0, False)
    eager = TrainStep(a, opt_a, 64)
    compiled = TrainStep(b, opt_b, 64, compile=True)
    g = torch.Generator().manual_seed(1)
    for i in range(5):
        x = torch.rand(64, 64, generator=g).bernoulli(generator=g)
        torch.manual_seed(i)
        sa = eager(x, i / 4)
        torch.manual_seed(i)
        sb = compiled(x, i / 4)
        assert torch.allclose(sa.elbo, sb.elbo, rtol=1e-4), (i, sa.elbo, sb.elbo)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        rel = (pa.grad - pb.grad).norm() / pa.grad.norm().clamp_min(1e-12)  # fused float32 rounding only
        assert rel < 1e-2, (name, float(rel))


def test_evaluation_cadence_does_not_change_training(tmp_path):
    a = train(digits_cfg("lvae", epochs=3, eval_every=1, snapshot_every=1), tmp_path / "a", progress=False)
    b = train(digits_cfg("lvae", epochs=3, eval_every=3, snapshot_every=3), tmp_path / "b", progress=False)
    ma, mb = ckpt.load_model(a)[0], ckpt.load_model(b)[0]
    assert all(torch.equal(x, y) for x, y in zip(ma.state_dict().values(), mb.state_dict().values()))


def test_demo_refuses_a_broken_existing_run_without_touching_it(digits_runs, tmp_path):
    import shutil

    from training.demo import run_demo
    broken = tmp_path / "digits-vae-bn-wu"
    shutil.copytree(digits_runs["vae"], broken)
    (broken / ckpt.CONFIG).write_text('{"model": "gan"}')
    with pytest.raises(UserError, match="move it away"):
        run_demo(tmp_path, progress=False)
    assert (broken / ckpt.CONFIG).read_text() == '{"model": "gan"}'
    assert not (tmp_path / "digits-lvae-bn-wu").exists()


def test_a_group_trains_in_lockstep_like_each_run_alone(tmp_path, monkeypatch):
    """train_group: one step of each model per batch; with the sampling noise removed (the only stream the
    group members share), every run ends exactly as if trained alone, with its own complete run folder."""
    from training.train import train_group
    monkeypatch.setattr(torch, "randn_like", lambda t, **kw: torch.zeros_like(t))
    cfgs = [digits_cfg("vae", epochs=3, eval_every=1), digits_cfg("lvae", epochs=3, eval_every=1, seed=4)]
    grouped = train_group([(c, tmp_path / f"g{i}") for i, c in enumerate(cfgs)], progress=False)
    alone = [train(c, tmp_path / f"a{i}", progress=False) for i, c in enumerate(cfgs)]
    for g, a in zip(grouped, alone):
        mg, _, eg = ckpt.load_model(g)
        ma, _, ea = ckpt.load_model(a)
        assert eg == ea == 3
        for (name, tg), ta in zip(mg.state_dict().items(), ma.state_dict().values()):
            assert torch.equal(tg, ta), (g.name, name)
        assert [h["train_elbo"] for h in ckpt.read_history(g)] == [h["train_elbo"] for h in ckpt.read_history(a)]


def test_runs_that_cannot_move_in_lockstep_train_on_their_own(tmp_path):
    from training.train import train_group
    a, b = train_group([(digits_cfg("vae", epochs=2), tmp_path / "a"), (digits_cfg("vae", epochs=3), tmp_path / "b")],
                       progress=False)
    assert [h["epoch"] for h in ckpt.read_history(a)] == [1, 2] and ckpt.load_model(b)[2] == 3


def test_resume_removes_the_temporary_files_a_killed_writer_left(tmp_path):
    run = train(digits_cfg("vae", epochs=1), tmp_path / "r", progress=False)
    stale = [run / ".checkpoint.safetensors.abc123.tmp", run / ckpt.SNAPSHOTS / ".epoch_00002.safetensors.x.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    train(digits_cfg("vae", epochs=2), run, resume=True, progress=False)
    assert not any(p.exists() for p in stale)
    assert ckpt.load_model(run)[2] == 2


def _checkpoint_as_graph_mode_saves_it(run, cfg):
    """Rewrite run's checkpoint the way a GPU run in graph mode saved it before: torch.optim.Adam built
    with capturable=True (its flags in the param groups, step counters as tensors, lr as a tensor)."""
    model, _, epoch = ckpt.load_model(run)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=True)
    x = torch.rand(8, 64).bernoulli()
    model.train()
    from training.objectives import training_loss
    loss, _ = training_loss(model, x, 1.0)
    loss.backward()
    opt.step()
    for g in opt.param_groups:
        g["capturable"], g["lr"] = True, torch.tensor(cfg.lr)
    ckpt.save_checkpoint(run, model, opt, epoch, ckpt.load_training_state(run).rng)


def test_a_run_saved_by_graph_mode_on_a_gpu_resumes_on_a_cpu(tmp_path):
    cfg = digits_cfg("lvae", epochs=1)
    run = train(cfg, tmp_path / "r", progress=False)
    _checkpoint_as_graph_mode_saves_it(run, cfg)
    meta_groups = json.loads(ckpt.read_tensors(run / ckpt.CHECKPOINT)[1]["param_groups"])
    assert meta_groups[0]["capturable"] is True
    train(digits_cfg("lvae", epochs=2), run, resume=True, progress=False)
    assert ckpt.load_model(run)[2] == 2
    # the optimizer the resumed run saved has this device's flags, not the GPU's
    assert "capturable" not in json.loads(ckpt.read_tensors(run / ckpt.CHECKPOINT)[1]["param_groups"])[0]


def test_lasagne_adam_loads_a_capturable_state_for_this_device():
    from training.optim import LasagneAdam
    w = torch.nn.Parameter(torch.zeros(3))
    state = {"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.ones(3), "exp_avg_sq": torch.ones(3)}},
             "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-4, "capturable": True, "fused": None,
                               "foreach": True, "params": [0]}]}
    opt = LasagneAdam([w])
    opt.load_state_dict(state)
    assert not {"capturable", "fused", "foreach"} & set(opt.param_groups[0])
    st = opt.state[w]
    assert st["step"].device == w.device and st["step"].dtype == torch.float32 and float(st["step"]) == 5.0
    w.grad = torch.ones(3)
    opt.step()
    assert float(st["step"]) == 6.0 and torch.all(w < 0)


def test_the_explorer_loads_a_run_saved_by_graph_mode_on_the_cpu(tmp_path):
    from explorer.runs import discover_runs
    cfg = digits_cfg("vae", epochs=1)
    run = train(cfg, tmp_path / "runs" / "g", progress=False)
    _checkpoint_as_graph_mode_saves_it(run, cfg)
    found = [r for r in discover_runs([tmp_path / "runs"]) if r.name == "g"]
    assert found and found[0].ok, found


def test_a_poisoned_member_of_a_group_stops_alone_and_costs_the_others_nothing(tmp_path, monkeypatch):
    """Three runs in lockstep, the middle one's loss always NaN: its steps are skipped (counted in its
    history) until skip_limit, then it alone stops; the other two end with the weights they reach
    trained without it."""
    import training.step as st
    from training.train import train_group
    monkeypatch.setattr(torch, "randn_like", lambda t, **kw: torch.zeros_like(t))  # the shared noise stream
    real = st.ModelStep._loss

    calls = {"n": 0}

    def loss(self, x, beta):
        value, stats = real(self, x, beta)
        if self.model.cfg.seed != 9:
            return value, stats
        calls["n"] += 1  # 22 steps an epoch: every other step in epochs 1-2, then every step
        return (value * float("nan"), stats) if calls["n"] > 44 or calls["n"] % 2 else (value, stats)

    monkeypatch.setattr(st.ModelStep, "_loss", loss)
    cfgs = [digits_cfg("vae", epochs=4), digits_cfg("lvae", epochs=4, seed=9), digits_cfg("lvae", epochs=4, seed=4)]
    with pytest.raises(TrainingError, match=r"g1, epoch 3: 22 steps in a row.*skipped.*epoch 2\) is intact"):
        train_group([(c, tmp_path / f"g{i}") for i, c in enumerate(cfgs)], progress=False)
    poisoned = ckpt.read_history(tmp_path / "g1")
    assert [h["skipped_steps"] for h in poisoned] == [11, 11]  # counted; a bad step alone never stops a run
    assert all(math.isfinite(h["train_elbo"]) for h in poisoned)
    clean = train_group([(c, tmp_path / f"c{i}") for i, c in zip((0, 2), (cfgs[0], cfgs[2]))], progress=False)
    for g, c in zip((tmp_path / "g0", tmp_path / "g2"), clean):
        mg, _, eg = ckpt.load_model(g)
        mc, _, ec = ckpt.load_model(c)
        assert eg == ec == 4
        for (name, tg), tc in zip(mg.state_dict().items(), mc.state_dict().values()):
            assert torch.equal(tg, tc), (g.name, name)


def test_a_run_killed_during_its_first_config_write_starts_again(tmp_path):
    """The killed start left only a temporary file: the folder is not "taken", and the leftover goes."""
    from conftest import digits_cfg
    out = tmp_path / "run"
    out.mkdir()
    (out / ".config.json.x1.tmp").write_text("partial")
    train(digits_cfg("vae", layers=1, epochs=1), out, progress=False)
    assert (out / "config.json").is_file() and not list(out.glob(".*.tmp"))
