"""Running a sweep's jobs on a Ray cluster: each job is one Ray task (`pip install "filterviz[ray]"`).

`run_tasks(fn, calls)` runs `fn(*call)` for every call as a task and hands each result to the caller as soon as
its task finishes (`ray.wait`), so the caller keeps the manifest and one progress bar over all jobs. The sweep
passes `filterviz.sweep.run_job`, the same function that runs one job in the serial sweep, so both executors
render, save and resume in exactly the same way.

- Resources: a task asks for one GPU where the cluster has GPUs, else for all the CPUs of the smallest node
  (one job per machine at a time: TensorFlow already uses every core of its machine for one job's batch).
- A task whose worker dies (killed, out of memory, node lost) is retried (`RETRIES` times). A killed job leaves
  no half-written file: every file is written atomically and metrics.json, the "done" mark, last; the retry
  starts the job again (`filterviz.jobs.job_finished` decides what is finished).
- Without an address a local cluster is started with this machine's CPUs (and shut down at the end); with one
  (`auto`, `HOST:PORT` or `ray://HOST:PORT`) the cluster is joined. In a process where Ray is already
  initialized, that connection is used.
- Every node must see the sweep's output folder (and the config's model files) under the same path, e.g. a
  shared file system; tasks run in the driver's working folder, so relative paths work where it is shared too.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable, Sequence

from .errors import UserError

__all__ = ["RETRIES", "CONNECT_TIMEOUT_S", "check_address", "run_tasks"]

RETRIES = 3  # times a task is run again after its worker died
CONNECT_TIMEOUT_S = 5.0  # how long to wait for a cluster's address to answer before giving up
_ADDRESS = re.compile(r"(?:ray://)?(?P<host>[A-Za-z0-9][A-Za-z0-9.\-]*|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})")


def check_address(address: str | None) -> str | None:
    """The address of a cluster to join as given (None or '' for a local cluster), checked at once: a bad form,
    or HOST:PORT where nothing answers within CONNECT_TIMEOUT_S, is a UserError naming it."""
    if address is None or address.strip() == "":
        return None
    address = address.strip()
    m = _ADDRESS.fullmatch(address)
    if address != "auto" and not (m and 1 <= int(m.group("port")) <= 65535):
        raise UserError(f"bad Ray address '{address}': use HOST:PORT (e.g. 10.0.0.1:6379), ray://HOST:PORT or auto")
    _reachable(address)
    return address


def _reachable(address: str) -> None:
    """Fail fast (CONNECT_TIMEOUT_S) when nothing answers at HOST:PORT; Ray itself would retry for a minute."""
    m = _ADDRESS.fullmatch(address)
    if m is None:  # auto: Ray finds the cluster of this machine itself
        return
    host = m.group("host").strip("[]")
    try:
        socket.create_connection((host, int(m.group("port"))), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise UserError(f"cannot reach a Ray cluster at '{address}' ({e.strerror or e}); start one with "
                        "'ray start --head' or check the address") from None


def _connect(ray, address: str | None) -> bool:
    """Join the cluster at `address`, or start a local one; True when this call started (and so ends) Ray."""
    if ray.is_initialized():
        return False
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING, configure_logging=True)
    address = address or check_address(os.environ.get("RAY_ADDRESS"))
    if address is None:
        ray.init(num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False, **quiet)
        return True
    try:
        ray.init(address=address, **quiet)
    except Exception as e:  # Ray raises ConnectionError, RuntimeError or ValueError, depending on the address
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"cannot join the Ray cluster at '{address}': {first}") from None
    return True


def _resources(ray) -> dict:
    """What one task asks for: a GPU where the cluster has GPUs, else the CPUs of its smallest node."""
    if ray.cluster_resources().get("GPU", 0) >= 1:
        return {"num_gpus": 1}
    cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU")]
    return {"num_cpus": max(1, int(min(cpus))) if cpus else 1}


def _in_folder(fn: Callable, folder: str, *args, **kwargs):
    """The task: `fn(*args, **kwargs)` run in the driver's working folder where this node has it."""
    if os.path.isdir(folder):
        os.chdir(folder)
    return fn(*args, **kwargs)


def _failure(ray, error: Exception, label: str) -> Exception:
    """A task's failure as the error to raise: a UserError as it was, with the job named; else one line."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, UserError):
        return UserError(f"{label}: {cause}")
    if isinstance(cause, KeyboardInterrupt):
        return KeyboardInterrupt()
    if isinstance(error, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)):
        return UserError(f"{label}: its Ray worker died {RETRIES + 1} times ({type(error).__name__}); "
                         "run the same command again to resume")
    return error


def run_tasks(
    fn: Callable,
    calls: Sequence[tuple],
    *,
    on_result: Callable[[int, object], None],
    kwargs: dict | None = None,
    labels: Sequence[str] | None = None,
    address: str | None = None,
) -> None:
    """Run `fn(*calls[k], **kwargs)` for every k as Ray tasks; `on_result(k, result)` as each one finishes.

    `fn` must be importable on every node (a module-level function of an installed package). A task's UserError
    is raised here with `labels[k]` in front; on any exception (Ctrl-C too) the remaining tasks are cancelled.
    """
    try:
        import ray
    except ImportError:
        raise UserError("executor ray needs Ray: pip install 'filterviz[ray]'") from None
    if not calls:
        return
    owned = _connect(ray, check_address(address))
    pending: dict = {}
    try:
        task = ray.remote(_in_folder).options(max_retries=RETRIES, retry_exceptions=False, **_resources(ray))
        folder = os.getcwd()
        pending = {task.remote(fn, folder, *call, **(kwargs or {})): k for k, call in enumerate(calls)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except (ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as e:
                raise _failure(ray, e, labels[k] if labels else f"task {k}") from None
            on_result(k, result)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if owned:
            ray.shutdown()
