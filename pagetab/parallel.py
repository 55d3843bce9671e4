"""Jobs run on an Executor: a process pool here, or a Dask cluster's."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

__all__ = ["check_executor", "run_jobs"]

T = TypeVar("T")


def check_executor(executor: Any) -> None:
    """TypeError unless ``executor`` is None or a concurrent.futures.Executor."""
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(f"executor must be a concurrent.futures.Executor, not {executor!r}")


def run_jobs(fn: Callable[[Any], T], jobs: Sequence[Any], executor: Executor | None,
             progress: Callable[[int, int], None] | None) -> list[T]:  # fmt: skip
    """``fn(job)`` for every job, in parallel, the results in the jobs' order.

    Parameters
    ----------
    fn
        A picklable function of one job.
    jobs
        The jobs.
    executor
        Any ``concurrent.futures.Executor`` (for a cluster,
        ``dask.distributed.Client(address).get_executor()``); None makes a
        process pool with one worker per CPU, shut down afterwards.
    progress
        Called with (done, total) as jobs finish.

    Returns
    -------
    list
        ``fn``'s results; the first failing job's exception is raised.
    """
    check_executor(executor)
    own = executor is None
    ex = executor if executor is not None else ProcessPoolExecutor(os.cpu_count() or 1)
    try:
        futures: list[Future[T]] = [ex.submit(fn, j) for j in jobs]
        for done, _ in enumerate(as_completed(futures), 1):
            if progress is not None:
                progress(done, len(jobs))
        return [f.result() for f in futures]
    finally:
        if own:
            ex.shutdown(cancel_futures=True)
