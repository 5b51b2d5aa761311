"""`python -m training reproduce`: the paper's MNIST grid, trained, evaluated and tabulated.

Sønderby et al. 2016, Sec. 3: VAE, VAE+BN, VAE+BN+WU and LVAE+BN+WU with 1..5
stochastic layers, Adam (lr 2e-3), batch 256, warm-up over 200 epochs, 2000
epochs, dynamic binarization, evaluated with 5000 importance samples; the
optimizer, clipping, initialisation and pixel scale of the authors' code
(RunConfig's defaults), BN statistics recomputed before evaluation.

Entries train and evaluate in worker processes (concurrent.futures, spawned; or Ray tasks across
machines with `--engine ray`, training/engines.py): `--jobs N` runs N workers at once (on one GPU
too, each with its own CUDA context), and each worker trains `--group M` entries in lockstep, their
steps captured in one CUDA graph on a GPU; which mix is fastest is for benchmarks/train_speed.py to
say. Each finished entry writes its row to result.json in its run folder and the tables are built
from those. A killed command loses at
most the epochs since each run's last checkpoint. Finished entries are kept in
results/paper-<dataset>.json; running the same command again skips them and resumes the rest.
"""
from __future__ import annotations

import datetime as dt
import json
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from .checkpoint import atomic_write
from .config import RunConfig
from .engines import WorkerDied, make_engine
from .errors import TrainingError, UserError
from .paper import LEGACY_STAGES, PAPER_PIXEL_SCALE, paper_iw_ll

RESULT = "result.json"  # an entry's results row, in its run folder (the table is built from these)

# The paper's four configurations, by the names its figures use.
GRID_MODELS = {
    "vae": dict(model="vae", batch_norm=False, warmup=False),
    "vae+bn": dict(model="vae", batch_norm=True, warmup=False),
    "vae+bn+wu": dict(model="vae", batch_norm=True, warmup=True),
    "lvae+bn+wu": dict(model="lvae", batch_norm=True, warmup=True),
}


@dataclass
class Entry:
    """One model of the grid: its run folder name, config, stage, and the run it continues (fine-tuning)."""
    name: str
    grid_model: str
    stage: str          # "base", "finetune" or "finetune+iw" (training.paper.STAGES)
    cfg: RunConfig
    parent: str = ""    # run folder name this entry starts from ("" for a base run)


def grid(dataset: str, data_dir: str, models: list[str], layers: list[int], seeds: int, epochs: int,
         warmup_epochs: int, iw_samples: int, finetune_epochs: int, finetune_iw_samples: int,
         device: str, eval_every: int, mc_samples: int = 1, finetune_mc_samples: int = 10,
         pixel_scale: int = 256, step_mode: str = "auto") -> list[Entry]:
    """The entries to run, each fine-tuning entry after the run it starts from.

    With finetune_epochs, every base run gets the paper's two later stages, both started from it:
    "finetune" (beta 1, lr x0.75 every 200 epochs, finetune_mc_samples Monte-Carlo samples) and
    "finetune+iw" (the same with finetune_iw_samples importance samples).
    """
    entries = []
    for key in models:
        spec = GRID_MODELS[key]
        for n in layers:
            for seed in range(seeds):
                base = RunConfig.make(model=spec["model"], layers=n, dataset=dataset, data_dir=data_dir,
                                 batch_norm=spec["batch_norm"], warmup_epochs=warmup_epochs if spec["warmup"] else 0,
                                 epochs=epochs, batch_size=256, lr=2e-3, iw_samples=iw_samples, mc_samples=mc_samples,
                                 eval_every=eval_every, seed=seed, device=device, pixel_scale=pixel_scale,
                                 step_mode=step_mode)
                samples = (f"-mc{mc_samples}" if mc_samples > 1 else "") + (f"-iw{iw_samples}" if iw_samples > 1 else "")
                stem = f"{key.replace('+', '-')}-L{n}{samples}-s{seed}"
                entries.append(Entry(stem, key, "base", base))
                if finetune_epochs:
                    ft = replace(base, epochs=finetune_epochs, warmup_epochs=0, lr_decay=0.75, lr_decay_every=200)
                    entries.append(Entry(f"{stem}-ft", key, "finetune",
                                         replace(ft, mc_samples=finetune_mc_samples, iw_samples=1), stem))
                    entries.append(Entry(f"{stem}-ftiw", key, "finetune+iw",
                                         replace(ft, mc_samples=1, iw_samples=finetune_iw_samples), stem))
    return entries


def run_entries(entries: list[Entry], runs_dir: Path, eval_samples: int, time_limit: float | None) -> list[dict]:
    """Train (or resume) entries together (lockstep, one CUDA graph on a GPU) and evaluate the finished ones.

    A fine-tuning entry starts from its parent's run folder. Entries the time
    limit stopped first have no result (they resume next time).
    """
    from .evaluate import evaluate_run
    from .train import train_group

    runs = []
    for e in entries:
        out = runs_dir / e.name
        cfg = replace(e.cfg, init_from=str(runs_dir / e.parent)) if e.parent else e.cfg
        runs.append((cfg, out))
    # Each run resumes if its folder exists (a half-finished group resumes what exists, starts the rest).
    train_group(runs, resume=[(out / ckpt.CONFIG).is_file() for _, out in runs], progress=False,
                time_limit=time_limit)
    results = []
    for e, (cfg, out) in zip(entries, runs):
        history = ckpt.read_history(out)
        if not history or history[-1]["epoch"] < cfg.epochs:
            continue
        r = evaluate_run(out, eval_samples, device=cfg.device)
        base_cfg = ckpt.load_config(runs_dir / e.parent) if e.parent else cfg
        results.append(result_row(e.name, e.grid_model, e.stage, e.parent, cfg, base_cfg, r, history, out))
    return results


def result_row(name: str, grid_model: str, stage: str, parent: str, cfg: RunConfig, base_cfg: RunConfig,
               r: dict, history: list[dict], run: Path, date: str | None = None) -> dict:
    """One results row: the run's setup, its evaluation r (evaluate_run's dict) and the paper's number
    for exactly that (model, layers, stage, training samples), else None. Epochs are those trained."""
    epochs = r.get("epochs", cfg.epochs)
    stage_epochs = {"base": base_cfg.epochs if parent else epochs}
    if parent:
        stage_epochs[stage] = epochs
    return {
        "name": name, "model": grid_model, "stage": stage, "parent": parent, "layers": cfg.layers,
        "bn": "BN" in cfg.arch.tags(), "warmup": bool(cfg.warmup_epochs), "epochs": epochs,
        "stage_epochs": stage_epochs, "train_mc_samples": cfg.mc_samples,
        "train_iw_samples": cfg.iw_samples, "base_iw_samples": base_cfg.iw_samples,
        "pixel_scale": r["pixel_scale"], "bn_stats": r["bn_stats"],
        "paper_iw_ll": paper_iw_ll(cfg.dataset, grid_model, cfg.layers, stage, cfg.mc_samples, cfg.iw_samples,
                                   base_cfg.iw_samples),
        "seed": cfg.seed, "iw_samples": r["iw_samples"],
        "iw_ll": r["iw_ll"], "elbo": r["test_elbo"], "active_units": r["active_units"],
        "kl_per_layer": r["test_kl_per_layer"],
        "seconds": sum(h["seconds"] for h in history if h.get("epoch", 0) <= epochs),
        "device": r["device"], "date": date or dt.date.today().isoformat(), "run": str(run),
    }


def grid_model_of(cfg: RunConfig) -> str:
    """The grid's name for a run's configuration (e.g. "lvae+bn+wu"); UserError if it is none of them."""
    for key, spec in GRID_MODELS.items():
        if (spec["model"], spec["batch_norm"], spec["warmup"]) == (cfg.model, "BN" in cfg.arch.tags(), bool(cfg.warmup_epochs)):
            return key
    raise UserError(f"{cfg.label} is not one of the paper's configurations ({', '.join(GRID_MODELS)})")


def add_runs(run_dirs: list[Path], out: Path) -> Path:
    """Add trained base runs that carry an eval.json (`training export --iw-samples K`) to
    out/paper-<dataset>.json and .md, as rows of the grid (a row of the same name is replaced)."""
    by_dataset: dict[str, list[dict]] = {}
    for run in map(Path, run_dirs):
        cfg = ckpt.load_config(run)
        if cfg.init_from:
            raise UserError(f"{run}: a fine-tuned run; --add takes base runs (fine-tuning rows come from the grid)")
        try:
            r = json.loads((run / ckpt.EVAL).read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{run}: no readable {ckpt.EVAL} ({e}); make one with `training export --iw-samples`") from None
        by_dataset.setdefault(cfg.dataset, []).append(
            result_row(run.name, grid_model_of(cfg), "base", "", cfg, cfg, r, ckpt.read_history(run), run,
                       r.get("export_date")))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for dataset, rows in by_dataset.items():
        json_path = out / f"paper-{dataset}.json"
        names = {row["name"] for row in rows}
        results = [r for r in load_results(json_path) if r["name"] not in names] + rows
        save_results(json_path, results)
        atomic_write(out / f"paper-{dataset}.md", markdown_table(results, dataset).encode())
    return out


def load_results(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UserError(f"{path}: not valid JSON; move it away to start the results afresh") from None
    return data if isinstance(data, list) else []


def save_results(path: Path, results: list[dict]) -> None:
    atomic_write(path, json.dumps(results, indent=1).encode())


def row_stage(r: dict) -> str:
    """A result's stage; rows written before stages existed say "variant"."""
    return r.get("stage") or LEGACY_STAGES.get(r.get("variant", ""), "base")


def summarize(results: list[dict], dataset: str) -> list[dict]:
    """One row per (model, stage, layers, training samples, pixel scale): mean and spread over seeds, and the
    paper's number for exactly that, if any (training.paper.paper_iw_ll)."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        key = (r["model"], row_stage(r), r["layers"], r.get("train_mc_samples", 1), r["train_iw_samples"],
               r.get("pixel_scale"))
        groups.setdefault(key, []).append(r)
    order = list(GRID_MODELS)
    rows = []
    for key in sorted(groups, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1], k[2], k[3], k[4],
                                             str(k[5]))):
        rs = groups[key]
        ll = [r["iw_ll"] for r in rs]
        model, stage, layers, mc, iw, scale = key
        paper = paper_iw_ll(dataset, model, layers, stage, mc, iw, rs[0].get("base_iw_samples", 1))
        rows.append({
            "model": model.upper(), "stage": stage, "train M": mc, "train K": iw, "layers": layers,
            "epochs": "+".join(str(v) for v in rs[0].get("stage_epochs", {"": rs[0].get("epochs")}).values()),
            "pixel scale": f"1/{scale}" if scale else "", "seeds": len(rs),
            "iw_ll": statistics.mean(ll), "iw_ll_sd": statistics.stdev(ll) if len(ll) > 1 else None,
            "eval K": rs[0]["iw_samples"], "elbo": statistics.mean(r["elbo"] for r in rs),
            "active_units": [round(statistics.mean(u)) for u in zip(*(r["active_units"] for r in rs))],
            "paper": paper,
        })
    return rows


def markdown_table(results: list[dict], dataset: str) -> str:
    """The summary as a markdown table beside the paper's numbers."""
    lines = [f"# Sønderby et al. 2016 reproduced on {dataset}", "",
             "Test log-likelihood by the importance-weighted bound (nats; higher is better). ± is the standard "
             "deviation over seeds. Active units per layer (1..L) by Cov_x(E_q[u|x]) > 0.01. Train M / K: "
             "Monte-Carlo samples outside / importance samples inside the log. Epochs: base + fine-tuning. "
             f"The paper's numbers use pixels at 1/{PAPER_PIXEL_SCALE} of a byte; a row at 1/255 scores about "
             "1.3 nats too high beside them. The paper column is filled only for a row trained as the paper's "
             "(model, layers, stage) was.", "",
             "| model | stage | train M | train K | layers | epochs | pixel scale | seeds | IW log-likelihood | ELBO "
             "| active units | paper |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in summarize(results, dataset):
        spread = f" ± {row['iw_ll_sd']:.2f}" if row["iw_ll_sd"] is not None else ""
        paper = "" if row["paper"] is None else f"{row['paper']:.2f}"
        lines.append(f"| {row['model']} | {row['stage']} | {row['train M']} | {row['train K']} | {row['layers']} | "
                     f"{row['epochs']} | {row['pixel scale']} | {row['seeds']} | "
                     f"{row['iw_ll']:.2f}{spread} (IW-{row['eval K']}) | {row['elbo']:.2f} | "
                     f"{'/'.join(map(str, row['active_units']))} | {paper} |")
    return "\n".join(lines) + "\n"


def reproduce(dataset: str, data_dir: str, out: Path, models: list[str], layers: list[int], seeds: int = 1,
              epochs: int = 2000, warmup_epochs: int = 200, iw_samples: int = 1, finetune_epochs: int = 0,
              finetune_iw_samples: int = 10, eval_samples: int = 5000, jobs: int = 1, device: str = "auto",
              eval_every: int = 100, time_limit: float | None = None, group: int = 1, mc_samples: int = 1,
              finetune_mc_samples: int = 10, pixel_scale: int = 256, engine: str = "local",
              address: str | None = None, tasks_per_gpu: int = 1, step_mode: str = "auto") -> tuple[Path, bool]:
    """Run what is missing of the grid; returns the results file and whether the grid is complete.

    jobs tasks run at once, each training up to `group` entries in lockstep: worker processes here
    (engine "local") or Ray tasks (engine "ray", on the cluster at `address`, else a local one; on a
    GPU each task asks for 1/tasks_per_gpu of one; out must be a path every node sees). When a task
    fails, the others are stopped (each keeps its last checkpoint), the finished results are saved,
    and the error names the failed entries; running the command again resumes the rest.
    """
    unknown = [m for m in models if m not in GRID_MODELS]
    if unknown:
        raise UserError(f"unknown model {unknown[0]!r}: choose from {', '.join(GRID_MODELS)}")
    if any(not 1 <= n <= 5 for n in layers):
        raise UserError("--layers takes numbers from 1 to 5")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"paper-{dataset}.json", out / f"paper-{dataset}.md"
    runs_dir = out / "runs"
    results = load_results(json_path)
    done = {r["name"] for r in results}
    entries = []
    for e in grid(dataset, data_dir, models, layers, seeds, epochs, warmup_epochs, iw_samples, finetune_epochs,
                  finetune_iw_samples, device, eval_every, mc_samples, finetune_mc_samples, pixel_scale, step_mode):
        if e.name not in done and (row := read_result(runs_dir / e.name)) is not None:
            results.append(row)  # finished by a command that was stopped before it saved the table
            done.add(e.name)
        if e.name not in done:
            entries.append(e)
    deadline = time.monotonic() + time_limit if time_limit else None
    pending = list(entries)
    running: dict[Any, list[Entry]] = {}
    failure = ""
    # A group's finished entries leave RESULT files in their run folders; the table is built from
    # those, so a worker that dies loses nothing that finished.
    gpus = (1.0 / max(1, tasks_per_gpu)) if device != "cpu" and engine == "ray" else 0.0
    runner = make_engine(engine, run_group, jobs, address, gpus)
    try:
        while pending or running:
            # Fine-tuning entries wait until the run they start from has its result.
            ready = [e for e in pending if not e.parent or e.parent in done]
            while not failure and ready and len(running) < jobs and (deadline is None or time.monotonic() < deadline - 30):
                batch = [e for e in ready if e.cfg.epochs == ready[0].cfg.epochs][:group]  # lockstep needs equal epochs
                for e in batch:
                    ready.remove(e)
                    pending.remove(e)
                left = None if deadline is None else deadline - time.monotonic()
                running[runner.submit([_entry_dict(e) for e in batch], str(runs_dir), eval_samples, left)] = batch
            if not running:
                break  # out of time, a failure, or only fine-tuning entries whose parents did not finish
            for handle in runner.wait_any(list(running)):
                batch = running.pop(handle)
                try:
                    runner.result(handle)
                except WorkerDied as err:
                    unfinished = [e.name for e in batch if not (runs_dir / e.name / RESULT).is_file()]
                    failure = failure or f"{', '.join(unfinished)}: {err}"
                except (UserError, TrainingError) as err:
                    failure = failure or f"{', '.join(e.name for e in batch)}: {err}"
                for e in batch:
                    result = read_result(runs_dir / e.name)
                    if result is not None and e.name not in done:
                        results.append(result)
                        done.add(e.name)
                        print(f"{e.name}: IW-{result['iw_samples']} {result['iw_ll']:.2f} nats, active units "
                              f"{result['active_units']}", flush=True)
                save_results(json_path, results)
                atomic_write(md_path, markdown_table(results, dataset).encode())
            if failure:
                runner.stop(list(running))  # each stops with its last checkpoint intact
                running.clear()
                pending.clear()
    finally:
        runner.close()
    atomic_write(md_path, markdown_table(results, dataset).encode())
    if failure:
        raise UserError(f"{failure}; the other entries were stopped at their last checkpoint; "
                        "run the same command again to resume them")
    complete = all(e.name in done for e in entries)
    return json_path, complete


def run_group(entries_json: list[dict], runs_dir: str, eval_samples: int, left: float | None) -> list[str]:
    """A worker's task: train and evaluate a group of entries in lockstep; each finished entry writes
    its row to <run folder>/result.json. Returns the names of those that finished."""
    entries = [Entry(d["name"], d["grid_model"], d["stage"], RunConfig(**d["cfg"]), d["parent"]) for d in entries_json]
    rows = run_entries(entries, Path(runs_dir), eval_samples, left)
    for row in rows:
        atomic_write(Path(runs_dir) / row["name"] / RESULT, json.dumps(row, indent=1).encode())
    return [row["name"] for row in rows]


def read_result(run: Path) -> dict | None:
    """An entry's result row (result.json in its run folder), or None if it has none yet."""
    try:
        return json.loads((run / RESULT).read_text())
    except (OSError, ValueError):
        return None


def _entry_dict(e: Entry) -> dict:
    import dataclasses
    return {"name": e.name, "grid_model": e.grid_model, "stage": e.stage, "parent": e.parent,
            "cfg": dataclasses.asdict(e.cfg)}
