"""The Dagster instance a ``medtrinity`` command works on: set up once per ``DAGSTER_HOME``, and swept
of runs whose process died before anything new starts.

- **One set-up at a time.** On a fresh ``DAGSTER_HOME`` every process that opens the instance creates
  the SQLite tables; two at the same instant collide ("table ... already exists"). :func:`open_instance`
  writes ``dagster.yaml`` (when missing) and creates every storage while holding a file lock beside
  them, so the second process finds the tables made and simply opens them.
- **Killed runs end failed.** A run whose process was killed (Ctrl-C twice, OOM, a closed laptop) stays
  STARTED forever in Dagster's storage. :func:`fail_orphaned_runs` marks such runs failed, with a
  message, when the next command starts: runs launched by ``medtrinity run`` carry the host, pid and
  process start time of their process; runs launched from the UI on a single-host (SQLite) instance are
  judged by the pid Dagster recorded with the run's start event. A run whose process still lives (a
  concurrent ``medtrinity run``, a UI run in progress) is left alone; so is every run of a shared
  (PostgreSQL) instance that ``medtrinity run`` did not launch on this host.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

LOCK_NAME = ".medtrinity-instance.lock"
HOST_TAG, PID_TAG, PROCESS_STARTED_TAG = "medtrinity/host", "medtrinity/pid", "medtrinity/process_started"
IN_PROGRESS = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.NOT_STARTED]

# Written when DAGSTER_HOME has no dagster.yaml. The onboarding pop-up and telemetry are off; the
# daemon of `dagster dev` watches run starts and cancellations (run_monitoring).
DEFAULT_DAGSTER_YAML = """\
telemetry:
  enabled: false
nux:
  enabled: false
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
"""


def _lock(home: Path):
    from filelock import FileLock

    return FileLock(str(home / LOCK_NAME), timeout=600)


def prepare_home(home: Path) -> Path:
    """``home`` with a ``dagster.yaml`` (written atomically, under the lock, only when missing)."""
    home.mkdir(parents=True, exist_ok=True)
    with _lock(home):
        yaml_path = home / "dagster.yaml"
        if not yaml_path.exists():
            tmp = home / f".dagster.yaml.{os.getpid()}.tmp"
            tmp.write_text(DEFAULT_DAGSTER_YAML)
            os.replace(tmp, yaml_path)
    return home


def open_instance(home: Path | None = None) -> DagsterInstance:
    """The instance of ``home`` (default ``$DAGSTER_HOME``), its storages created under the lock."""
    home = Path(home or os.environ["DAGSTER_HOME"])
    prepare_home(home)
    with _lock(home):
        instance = DagsterInstance.from_config(str(home))
        # touching each storage creates its tables (and runs its migrations) now, one process at a time
        instance.get_runs(limit=1)
        instance.get_dynamic_partitions("source")
        instance.all_instigator_state()
    return instance


def register_partitions(instance: DagsterInstance, home: Path, by_dimension: dict[str, list[str]]) -> None:
    """Add the missing dynamic partitions, under the lock (two processes adding one name would collide)."""
    with _lock(home):
        for dim, names in by_dimension.items():
            have = set(instance.get_dynamic_partitions(dim))
            new = [n for n in names if n not in have]
            if new:
                instance.add_dynamic_partitions(dim, new)


def _process_started(pid: int) -> float | None:
    """Start time (epoch seconds) of process ``pid``; None when there is no such process."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:  # it exists, we may not look at it
        return float("-inf")


def process_tags() -> dict[str, str]:
    """Tags that let the next command tell whether this process still runs the run."""
    started = _process_started(os.getpid())
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), PROCESS_STARTED_TAG: f"{started:.3f}"}


def _same_process_alive(pid: int, started: float | None, not_after: float | None) -> bool:
    now_started = _process_started(pid)
    if now_started is None:
        return False
    if started is not None:
        return abs(now_started - started) < 1.0  # the pid was not reused by another process
    return not_after is None or now_started <= not_after + 1.0  # it existed when the run started


def _is_single_host(instance: DagsterInstance) -> bool:
    return "Sqlite" in type(instance.run_storage).__name__


def _run_start_pid(instance: DagsterInstance, run_id: str) -> tuple[int | None, float | None]:
    records = instance.all_logs(run_id, of_type=DagsterEventType.RUN_START)
    if not records:
        return None, None
    entry = records[-1]
    return (entry.dagster_event.pid if entry.dagster_event else None), entry.timestamp


def fail_orphaned_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed every in-progress run whose process is gone; returns their run ids."""
    host = socket.gethostname()
    single_host = _is_single_host(instance)
    failed = []
    for run in instance.get_runs(filters=RunsFilter(statuses=IN_PROGRESS)):
        tags = run.tags
        if HOST_TAG in tags:
            if tags[HOST_TAG] != host:
                continue
            started = tags.get(PROCESS_STARTED_TAG)
            alive = _same_process_alive(int(tags[PID_TAG]), float(started) if started else None, None)
            how = f"medtrinity run (pid {tags[PID_TAG]})"
        elif single_host:
            pid, started_at = _run_start_pid(instance, run.run_id)
            if pid is None:
                continue  # never started: a queue or a launcher still owns it
            alive = _same_process_alive(pid, None, started_at)
            how = f"run worker (pid {pid})"
        else:
            continue
        if not alive:
            instance.report_run_failed(
                run, message=f"The process of this run, {how}, is gone (killed mid-way); marked failed by the "
                             "next medtrinity command. Rerun the partition to rebuild what it left unfinished.")
            failed.append(run.run_id)
    return failed
