"""The Dask cluster grading runs on: a local one by default, or one that is already running.

- default: an in-process `LocalCluster` of `--workers` worker processes, one thread each,
  listening on 127.0.0.1 only (its HTTP status server too, on a free port); it lives as long as
  the `grade` command;
- `--scheduler tcp://HOST:PORT` or `--scheduler-file FILE`: attach to a running cluster (the
  `dask scheduler` / `dask worker` commands, dask-jobqueue on Slurm, Dask on Kubernetes).

A worker that dies takes its task with it; the scheduler runs the task again on another worker,
at most ALLOWED_FAILURES more times (`distributed.scheduler.allowed-failures`, set here for the
local cluster and on an attached scheduler for as long as it runs).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import dask

ALLOWED_FAILURES = 2  # a task whose worker died is retried elsewhere at most twice
CONNECT_TIMEOUT_S = 30
WORKERS_TIMEOUT_S = 60  # an attached cluster must have a worker within this time


class ClusterError(Exception):
    """No cluster to grade on (a usage error: exit status 2)."""


def _set_allowed_failures(dask_scheduler, count: int) -> int:
    dask_scheduler.allowed_failures = count
    return count


def quiet() -> None:
    """Dask's own log lines (a worker lost, a connection closed) go unsaid: `grade` reports
    what matters to the instructor in its own words."""
    for name in ("distributed", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@contextlib.contextmanager
def connect(*, workers: int, scheduler: str | None, scheduler_file: str | None,
            local_directory: Path, client=None) -> Iterator:
    """A distributed.Client for the run (the local cluster is closed on exit); `client`: one
    the caller connected (Dask Gateway, a notebook's cluster), used as it is and left open."""
    from distributed import Client, LocalCluster

    quiet()
    if client is not None:
        with contextlib.suppress(Exception):
            client.run_on_scheduler(_set_allowed_failures, count=ALLOWED_FAILURES)
        yield client
        return
    cluster = None
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        if scheduler or scheduler_file:
            where = scheduler or scheduler_file
            try:
                if scheduler:
                    client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
                else:
                    if not Path(scheduler_file).is_file():
                        raise ClusterError(f"scheduler file not found: {scheduler_file}")
                    client = Client(scheduler_file=scheduler_file, timeout=CONNECT_TIMEOUT_S)
            except ClusterError:
                raise
            except Exception as err:  # noqa: BLE001 - OSError, TimeoutError, a bad address
                raise ClusterError(f"cannot reach the Dask scheduler {where}: "
                                   f"{(str(err).splitlines() or [type(err).__name__])[0]}") \
                    from None
            try:
                client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
            except (TimeoutError, OSError):
                client.close(timeout=10)
                raise ClusterError(f"no Dask worker joined the scheduler {where} within "
                                   f"{WORKERS_TIMEOUT_S} s") from None
            try:
                client.run_on_scheduler(_set_allowed_failures, count=ALLOWED_FAILURES)
            except Exception:  # noqa: BLE001 - a scheduler that refuses: its own setting holds
                pass
        else:
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address="127.0.0.1:0", memory_limit=0, local_directory=str(local_directory),
                silence_logs=logging.CRITICAL,
            )
            client = Client(cluster)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close(timeout=10)
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=20)
