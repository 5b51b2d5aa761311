"""Where `reproduce` runs its groups of entries: worker processes on this machine, or Ray tasks on a cluster.

Both run the same task, `training.reproduce.run_group`, and say the same things about it: it finished,
it raised (a user error or a run whose loss stayed NaN), or its worker died. Results never travel
back through the engine: each finished entry writes result.json in its run folder (on a path every
node sees, for Ray), and reproduce builds its tables from those files.
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .errors import TrainingError, UserError

ENGINES = ("local", "ray")


class WorkerDied(Exception):
    """The process running a task exited without finishing it (killed, out of memory)."""


class LocalEngine:
    """concurrent.futures worker processes, spawned, a fresh one per task (max_tasks_per_child=1): each
    its own CUDA context, freed when its group ends."""

    def __init__(self, task: Callable, jobs: int):
        self.task = task
        self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                        max_tasks_per_child=1)

    def submit(self, *args: Any) -> Any:
        return self.pool.submit(self.task, *args)

    def wait_any(self, handles: list[Any]) -> list[Any]:
        done, _ = wait(handles, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Any) -> Any:
        try:
            return handle.result()
        except BrokenProcessPool:
            raise WorkerDied("worker exited unexpectedly (killed?)") from None

    def stop(self, handles: list[Any]) -> None:
        """Stop the running tasks: SIGTERM, each run keeps its last checkpoint."""
        for handle in handles:
            handle.cancel()
        for proc in multiprocessing.active_children():
            proc.terminate()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayEngine:
    """Each task a Ray task asking for one CPU and, on a GPU, its share of one (several tasks share a GPU
    with gpus_per_task < 1). A task whose worker dies is retried up to `retries` times by Ray; the
    retry resumes every run of its group from the last checkpoint."""

    def __init__(self, task: Callable, address: str | None, gpus_per_task: float, retries: int):
        try:
            import ray
        except ImportError:
            raise UserError("--engine ray needs Ray: pip install -r requirements-ray.txt") from None
        self.ray = ray
        self.started_here = not ray.is_initialized()
        if self.started_here:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self.remote = ray.remote(task).options(num_cpus=1, num_gpus=gpus_per_task, max_retries=retries,
                                               retry_exceptions=False)

    def submit(self, *args: Any) -> Any:
        return self.remote.remote(*args)

    def wait_any(self, handles: list[Any]) -> list[Any]:
        ready, _ = self.ray.wait(handles, num_returns=1)
        return ready

    def result(self, handle: Any) -> Any:
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(handle)
        except exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, (UserError, TrainingError)):
                raise cause from None
            raise
        except (exceptions.WorkerCrashedError, exceptions.NodeDiedError) as e:
            raise WorkerDied(f"worker exited unexpectedly after its retries ({type(e).__name__})") from None

    def stop(self, handles: list[Any]) -> None:
        for handle in handles:
            self.ray.cancel(handle, force=True)

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()


def make_engine(name: str, task: Callable, jobs: int, address: str | None = None, gpus_per_task: float = 0.0,
                retries: int = 3) -> LocalEngine | RayEngine:
    if name == "local":
        return LocalEngine(task, jobs)
    if name == "ray":
        return RayEngine(task, address, gpus_per_task, retries)
    raise UserError(f"--engine must be one of {', '.join(ENGINES)}, not {name!r}")
