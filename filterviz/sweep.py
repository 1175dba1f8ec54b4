"""Running a sweep: this shard's unfinished jobs, resumably, then the paper figure.

The jobs run one after the other in this process (executor serial), or each as a Ray task on a cluster
(executor ray, `filterviz.raysweep`); both run a job with the same code (`run_job` is one job in a process).
Each job renders into its own folder (see `filterviz.jobs`); a redo deletes metrics.json before anything else,
so a kill at any moment leaves the job either finished or visibly unfinished. Each process writes only its own
manifest (manifest.json, or manifest.shard-I-of-N.json with --shard), so parallel shards never clobber each other.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from .errors import Interrupted
from .files import atomic_write, clean_temps, ensure_dir, read_json, safe_name, write_json
from .jobs import JOB_CONFIG, Job, ModelCache, model_cache, job_finished, plan_jobs, shard_jobs, sweep_status
from .models import LoadedModel
from .paper import write_figure
from .render import RenderPlan, prepare_render
from .results import render_into

__all__ = ["MANIFEST", "manifest_name", "SweepReport", "run_job", "run_sweep"]

MANIFEST = "manifest.json"


def manifest_name(shard: int, shards: int) -> str:
    """The manifest file of shard `shard` of `shards`: manifest.json when there is only one."""
    return MANIFEST if shards == 1 else f"manifest.shard-{shard}-of-{shards}.json"


@dataclasses.dataclass
class SweepReport:
    """What one run_sweep call did."""

    jobs: list
    rendered: list
    skipped: list
    manifest: Path | None
    figure: list


class _Manifest:
    """This process's manifest: one row per job of its shard, rewritten atomically after every change."""

    def __init__(self, cfg, shard: tuple[int, int], mine: list[Job], total: int) -> None:
        self.root = cfg.root
        self.path = cfg.root / manifest_name(*shard)
        self.head = {"sweep": cfg.name, "config": cfg.path, "shard": f"{shard[0]}/{shard[1]}",
                     "jobs_in_shard": len(mine), "jobs_in_sweep": total}
        self.rows = {
            j.id: {"id": j.id, "index": j.index, "model": j.model, "layer": j.layer, "point": dict(j.point),
                   "status": "pending", "seconds": None, "summary": None, "dir": j.id}
            for j in mine
        }

    def clean(self) -> None:
        """Remove the temp files a killed write of this manifest left."""
        clean_temps(self.root, f".{self.path.name}.")

    def set(self, job: Job, **fields) -> None:
        """Update the job's row (written by the next `write`)."""
        self.rows[job.id].update(fields)

    def write(self) -> None:
        """Write the manifest file (atomically)."""
        write_json(self.path, {**self.head, "jobs": list(self.rows.values())})


class _PlanCache:
    """One prepared render per (model, layer, settings), kept while that layer's jobs run (they differ only in
    filters), freed as soon as the sweep moves to another layer."""

    def __init__(self) -> None:
        self._plans: dict = {}

    def get(self, job: Job, lm: LoadedModel, mine: list[Job]) -> RenderPlan:
        """`job`'s plan, its loop built for the most filters any of this shard's jobs of its kind asks for."""
        key = (job.model, job.layer, job.settings)
        filters = list(job.filters) if isinstance(job.filters, tuple) else job.filters
        if key not in self._plans:
            stale = [k for k in self._plans if k[:2] != key[:2]]  # keep one layer's plans
            if stale:  # their traced loops sit in reference cycles: free them now, not at some later gc
                for k in stale:
                    del self._plans[k]
                gc.collect()
            same = [x.selected or 0 for x in mine if (x.model, x.layer, x.settings) == key]
            self._plans[key] = prepare_render(lm, job.layer, filters, job.settings, max_filters=max(same) or None)
        return self._plans[key].with_filters(filters)

    def clear(self) -> None:
        """Forget every plan (the model is done)."""
        self._plans.clear()


def _list_jobs(cfg, jobs: list[Job], mine: list[Job], shard: tuple[int, int], force: bool, echo) -> None:
    """The dry run: each job of this shard, done or todo, and a summary line; nothing written."""
    status = sweep_status(cfg, mine) if cfg.root.is_dir() else {}
    for j in mine:
        state = "done" if status.get(j.id) and not force else "todo"
        echo(f"{j.index + 1:>4}/{len(jobs)}  {state:<4}  {j.id}")
    todo = sum(1 for j in mine if force or not status.get(j.id))
    echo(f"{len(mine)} jobs in shard {shard[0]}/{shard[1]} of sweep '{cfg.name}' ({len(jobs)} in all), "
         f"{todo} to run -> {cfg.root}/ (dry run: nothing written)")


def _finished(cfg, job: Job, force: bool) -> dict | None:
    """A finished job's manifest fields (status skipped), or None when it is to be rendered (its folder's temp
    files, left by a killed write, are removed)."""
    clean_temps(cfg.root / job.id)
    done = None if force else job_finished(job, cfg.root, cfg.name)
    return None if done is None else dict(status="skipped", seconds=done.get("seconds"), summary=done.get("summary"))


def _start_job(cfg, job: Job) -> Path:
    """Make the job's folder read as unfinished (a partial result is kept, to resume) and write its config."""
    out = ensure_dir(cfg.root / job.id)
    old = read_json(out / "metrics.json")
    if not (isinstance(old, dict) and old.get("complete") is False):  # a partial one may be resumed
        (out / "metrics.json").unlink(missing_ok=True)  # from here on the job reads as unfinished
    atomic_write(out / JOB_CONFIG, yaml.safe_dump(job.resolved(cfg.name), sort_keys=False).encode())
    return out


class _ShardRun:
    """Runs this shard's jobs one by one, with one model and one layer's renderers in memory at a time."""

    def __init__(self, cfg, cache: ModelCache, mine: list[Job], *, force: bool, quiet: bool) -> None:
        self.cfg, self.cache, self.mine, self.force, self.quiet = cfg, cache, mine, force, quiet
        self.plans = _PlanCache()
        self.last_job = {j.model: j.index for j in mine}

    def run(self, job: Job, manifest: _Manifest) -> bool:
        """Render `job` unless it is finished (and not forced); True when it was rendered."""
        done = self.finished(job)
        if done is not None:
            manifest.set(job, **done)
        else:
            manifest.set(job, status="running")
            manifest.write()
            manifest.set(job, **self.render(job))
        manifest.write()
        return done is None

    def finished(self, job: Job) -> dict | None:
        """The manifest fields of a finished job (status skipped), or None when it is to be rendered."""
        return _finished(self.cfg, job, self.force)

    def render(self, job: Job) -> dict:
        """Render one job into its folder; its manifest fields (status, seconds, summary)."""
        out = _start_job(self.cfg, job)
        plan = self.plans.get(job, self.cache.get(job.model), self.mine)
        t0 = time.perf_counter()
        try:
            render_into(plan, out, request=job.resolved(self.cfg.name), quiet=self.quiet, force=self.force)
        except Interrupted as e:
            raise Interrupted(f"job '{job.id}': {e}") from None
        metrics = read_json(out / "metrics.json") or {}
        return dict(status="done", seconds=round(time.perf_counter() - t0, 3), summary=metrics.get("summary"))

    def release(self, job: Job) -> None:
        """After the model's last job: let its model, extractors and traced loops go."""
        if self.last_job[job.model] == job.index:
            self.cache.drop(job.model)
            self.plans.clear()
            gc.collect()


def _interrupted(cfg, mine: list[Job], manifest: _Manifest, e: KeyboardInterrupt) -> Interrupted:
    """Ctrl-C or SIGTERM: finished jobs stay finished; the manifest and the summary say how far it got."""
    for j in mine:  # the job folders are the truth: a job may have finished just before the signal
        if manifest.rows[j.id]["status"] == "running":
            clean_temps(cfg.root / j.id)  # a write the signal cut short (its temp file or a folder probe)
            manifest.set(j, status="done" if job_finished(j, cfg.root, cfg.name) else "interrupted")
    manifest.write()
    manifest.clean()
    finished = sum(row["status"] in ("done", "skipped") for row in manifest.rows.values())
    tail = f"; {e}" if isinstance(e, Interrupted) else "; run the same command again to resume"
    return Interrupted(f"sweep '{cfg.name}': {finished} of {len(mine)} jobs finished{tail}")


def _figure(cfg, jobs: list[Job], echo) -> list[Path]:
    """The config's figure, once every job of every shard is finished (else say what is missing)."""
    if cfg.figure is None:
        return []
    missing = [j for j, m in sweep_status(cfg, jobs).items() if m is None]
    if missing:
        echo(f"figure not made yet: {len(missing)} jobs of other shards are unfinished (then run: "
             f"filterviz figure {cfg.path})")
        return []
    return write_figure(cfg, jobs)


def _examples(cfg, mine: list[Job], cache: ModelCache, quiet: bool, echo) -> None:
    """The config's `examples:` job kind: each (model, layer) of this shard's jobs gets its top dataset patches in
    <root>/examples/<model>__<layer>/ (resumable, like a render; see filterviz.examples)."""
    if cfg.examples is None:
        return
    from .examples import find_examples
    from .jobs import model_label

    spec = cfg.examples
    for model, layer in dict.fromkeys((j.model, j.layer) for j in mine):
        out = cfg.root / "examples" / safe_name(f"{model_label(model)}__{layer}")
        try:
            meta = find_examples(cache.get(model), layer, spec.images, out, k=spec.k, batch=spec.batch,
                                 size=spec.size, quiet=quiet)
        except Interrupted as e:
            raise Interrupted(f"sweep '{cfg.name}': examples of {layer}: {e}") from None
        echo(f"examples of {model_label(model)} {layer}: top {meta['k']} of {len(meta['files'])} images -> {out}/")


def _gallery(cfg, echo) -> None:
    """`gallery: true`: the sweep's offline gallery (renders, examples) in <root>/gallery/."""
    if not cfg.gallery:
        return
    from .gallery import write_gallery

    site = write_gallery(cfg.root, cfg.root / "gallery")
    echo(f"gallery of {site['layers']} layers ({site['filters']} filter pages) -> {site['index']}")


def run_job(cfg, job: Job, *, force: bool = False) -> dict:
    """Run one job of `cfg` in this process, on its own (a Ray task runs this): skip it when it is finished
    (unless `force`), else render it into its folder. Its manifest fields (status, seconds, summary)."""
    runner = _ShardRun(cfg, model_cache(cfg), [job], force=force, quiet=True)
    try:
        return runner.finished(job) or runner.render(job)
    finally:
        runner.release(job)


def _run_here(cfg, cache: ModelCache, mine: list[Job], manifest: _Manifest, bar, force: bool, quiet: bool):
    """The serial executor: this shard's jobs one after the other in this process; (rendered, skipped)."""
    runner = _ShardRun(cfg, cache, mine, force=force, quiet=quiet)
    rendered, skipped = [], []
    for job in mine:
        (rendered if runner.run(job, manifest) else skipped).append(job)
        if bar is not None:
            bar.update(1)
        runner.release(job)
    return rendered, skipped


def _run_on_ray(cfg, mine: list[Job], manifest: _Manifest, bar, force: bool, address: str | None):
    """The Ray executor: finished jobs are skipped here, every other job runs `run_job` as a Ray task (retried
    when its worker dies); the manifest and the bar follow the tasks as they finish. (rendered, skipped)."""
    from .raysweep import run_tasks

    rendered, skipped, todo = [], [], []
    for job in mine:
        done = _finished(cfg, job, force)
        (skipped if done else todo).append(job)
        manifest.set(job, **(done or dict(status="running")))  # running: handed to the cluster
        if done and bar is not None:
            bar.update(1)
    manifest.write()

    def finished(k: int, fields: dict) -> None:
        manifest.set(todo[k], **fields)
        manifest.write()
        (skipped if fields["status"] == "skipped" else rendered).append(todo[k])  # a retry may find it done
        if bar is not None:
            bar.update(1)

    run_tasks(run_job, [(cfg, job) for job in todo], kwargs=dict(force=force), address=address,
              labels=[f"job '{j.id}'" for j in todo], on_result=finished)
    return rendered, skipped


def run_sweep(
    cfg,
    *,
    shard: tuple[int, int] = (1, 1),
    force: bool = False,
    quiet: bool = False,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
    executor: str | None = None,
    ray_address: str | None = None,
) -> SweepReport:
    """Run (or, with dry_run, list) this shard's unfinished jobs; skip finished ones unless `force`.

    `executor` (default: the config's) is 'serial' or 'ray'; with 'ray', `ray_address` (default: the config's)
    names a cluster to join, and without one a local cluster is started (see `filterviz.raysweep`)."""
    executor = executor or cfg.executor
    address = ray_address if ray_address is not None else cfg.ray_address
    if executor == "ray":
        from .raysweep import check_address

        address = check_address(address)  # a bad address fails before any work
    cache = model_cache(cfg)
    jobs = plan_jobs(cfg, cache)  # loads and checks everything before any work
    mine = shard_jobs(jobs, *shard)
    if dry_run:
        _list_jobs(cfg, jobs, mine, shard, force, echo)
        return SweepReport(mine, [], [], None, [])
    ensure_dir(cfg.root)
    manifest = _Manifest(cfg, shard, mine, len(jobs))
    manifest.clean()
    clean_temps(cfg.root, ".probe-")
    bar = None if quiet else tqdm(total=len(mine), desc=f"sweep {cfg.name}", unit="job", position=0,
                                  dynamic_ncols=True)
    try:
        if executor == "ray":
            rendered, skipped = _run_on_ray(cfg, mine, manifest, bar, force, address)
        else:
            rendered, skipped = _run_here(cfg, cache, mine, manifest, bar, force, quiet)
    except KeyboardInterrupt as e:
        raise _interrupted(cfg, mine, manifest, e) from None
    finally:
        if bar is not None:
            bar.close()
    manifest.write()
    figures = _figure(cfg, jobs, echo)
    _examples(cfg, mine, cache, quiet, echo)
    _gallery(cfg, echo)
    return SweepReport(mine, rendered, skipped, manifest.path, figures)
