"""The backfill's worker processes: a `ProcessPoolExecutor` of spawned processes that import
only the chunk code, with what a daemon needs and CPython's pool lacks: every worker started at
once, a chunk the pool cannot take or never answers given back to the caller (who examines it
itself), and a broken pool's processes killed so the interpreter can exit.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Final

from monitor.core.watch.chunk import Examined, Layout, start_worker
from monitor.core.watch.prefilter import PreFilter
from monitor.service.chunk_slots import examine_shared

__all__ = ["WorkerPool", "WorkerStartError", "worker_context"]

CHECK_SECONDS: Final = 5.0
"""How often a job not yet answered is checked for a dead worker."""


class WorkerStartError(Exception):
    """The worker processes could not be started (no processes or memory left)."""


class _WorkerProcess(SpawnProcess):
    """A spawned process that does not run the parent's main module first: spawn re-runs it
    (unless it is a package's `__main__`), and the `tlog-monitor` script's is the whole daemon,
    tens of MB a worker needs none of (it imports only `monitor.service.chunk_slots`)."""

    def start(self) -> None:
        main = sys.modules["__main__"]
        saved: dict[str, object] = {
            k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__
        }
        # What multiprocessing.spawn reads to tell the child which main module to run.
        main.__spec__ = None
        main.__dict__.pop("__file__", None)
        try:
            super().start()
        finally:
            main.__dict__.update(saved)


class _WorkerContext(SpawnContext):
    Process = _WorkerProcess


def worker_context() -> SpawnContext:
    """The multiprocessing context of the scanner's worker processes (`_WorkerProcess`)."""
    return _WorkerContext()


class WorkerPool:
    """`count` worker processes examining chunks (`examine_shared`) with `prefilter`."""

    def __init__(self, count: int, prefilter: PreFilter) -> None:
        """Start them all now (a pool starts one process per submit), while the first chunks
        download. OSError: no semaphores (a read-only /dev/shm); WorkerStartError: a process
        could not be started."""
        before = set(multiprocessing.active_children())
        self._pool = ProcessPoolExecutor(
            count, mp_context=worker_context(), initializer=start_worker, initargs=(prefilter,)
        )
        self.broken = False
        """Whether a worker died (the pool then takes no more chunks)."""
        try:
            for _ in range(count):
                self._pool.submit(os.getpid)
        except Exception as e:
            self.broken = True
            raise WorkerStartError(str(e)) from e
        finally:
            # Once the pool has `count` processes, no submit starts another: these are all.
            self._processes = [p for p in multiprocessing.active_children() if p not in before]
            if self.broken:
                self.close()

    def submit(self, begin: int, name: str, layout: Layout) -> asyncio.Future[Examined] | None:
        """The job examining the chunk in shared memory `name`; None when the pool broke."""
        if self.broken:
            return None
        try:
            return asyncio.get_running_loop().run_in_executor(
                self._pool, examine_shared, begin, name, layout
            )
        except Exception:  # noqa: BLE001 - what a dying pool raises varies: see below
            # BrokenProcessPool, or, racing a worker's death, OSError ("handle is closed") or
            # RuntimeError ("cannot schedule new futures after shutdown").
            self.broken = True
            return None

    async def result(self, job: asyncio.Future[Examined]) -> Examined | None:
        """`job`'s answer; None when the pool broke first (the caller examines the chunk).
        Anything else the job raised (a malformed chunk) is raised."""
        while True:
            done, _ = await asyncio.wait({job}, timeout=CHECK_SECONDS)
            if done:
                try:
                    return job.result()
                except BrokenProcessPool:
                    self.broken = True
                    return None
            if any(not p.is_alive() for p in self._processes):
                # A worker is dead and this job unanswered: CPython can leave the job of a
                # pool that broke unresolved forever (its manager thread races the submit).
                job.cancel()
                self.broken = True
                return None

    def close(self) -> None:
        """Stop the workers; kill those of a pool that broke."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.broken or any(p.exitcode not in (None, 0) for p in self._processes):
            # A submit racing the pool breaking can start a worker CPython never stops, and
            # the interpreter waits for it at exit (the daemon would hang when stopped).
            for process in self._processes:
                if process.is_alive():
                    process.kill()
