"""Helpers for the operations tests: tiny real sources, free ports, a throwaway PostgreSQL, instance YAMLs.

The service tests start real programs (PostgreSQL, ``dagster dev``, Chromium, a Dask cluster) on
127.0.0.1 and stop them in ``finally`` blocks; nothing here needs the network.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
DAGSTER_BIN = str(Path(PY).with_name("dagster"))


def write_tiny_sources(root: Path, *, n_sources: int = 3, images_per_source: int = 4, shards: int = 2,
                       data_root: str = "out", extra_sources: list[dict] | None = None) -> Path:
    """``n_sources`` image-folder sources of small real PNGs with a label CSV, and their YAML."""
    from PIL import Image

    rng = np.random.default_rng(42)
    sources = []
    for s in range(n_sources):
        name = f"tiny_{s}"
        folder = root / "inputs" / name
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["filename,modality,organ,disease"]
        for i in range(images_per_source):
            yy, xx = np.mgrid[0:48, 0:64]
            blob = ((yy - 10 - 3 * i) ** 2 + (xx - 20 - 4 * s) ** 2 < 60).astype(np.uint8) * 120
            img = (rng.integers(0, 60, (48, 64), dtype=np.uint8) + blob).astype(np.uint8)
            Image.fromarray(img).save(folder / f"img_{i}.png")
            lines.append(f"img_{i}.png,XR,chest,{'nodule' if i % 2 else 'normal'}")
        (folder / "labels.csv").write_text("\n".join(lines) + "\n")
        sources.append({"name": name, "format": "image_folder", "path": f"inputs/{name}",
                        "labels_csv": f"inputs/{name}/labels.csv", "roi": "none", "licence": "CC0-1.0",
                        "schedule": f"{s} 2 * * *"})
    sources.extend(extra_sources or [])
    cfg = {"data_root": data_root, "shards": shards, "salt": "ops-test-salt", "max_side": 64, "sources": sources}
    path = root / "sources.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_available() -> bool:
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@contextlib.contextmanager
def postgres_server() -> Iterator[tuple[str, int]]:
    """A fresh PostgreSQL cluster on 127.0.0.1 (random port, temp data dir); yields (url, port)."""
    # the server runs as the `postgres` user when we are root: its folder must be reachable by it
    base = Path(tempfile.mkdtemp(prefix="medtrinity-pg-", dir="/tmp"))
    os.chmod(base, 0o755)
    datadir = base / "data"
    port = free_port()
    script = REPO / "scripts" / "start_postgres.sh"
    out = subprocess.run(["bash", str(script), "start", str(datadir), str(port)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {out.stderr.strip()[-2000:]}")
    try:
        yield out.stdout.strip(), port
    finally:
        subprocess.run(["bash", str(script), "stop", str(datadir)], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def write_local_instance_yaml(home: Path) -> Path:
    """The single-user instance of deploy/local/dagster.yaml, copied into ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    dest = home / "dagster.yaml"
    shutil.copy(REPO / "deploy" / "local" / "dagster.yaml", dest)
    return dest


def write_team_instance_yaml(home: Path, *, max_concurrent_runs: int | None = None) -> Path:
    """deploy/team/dagster.yaml into ``home`` as committed (its Postgres settings come from the
    environment: :func:`postgres_env`), optionally with another run limit."""
    home.mkdir(parents=True, exist_ok=True)
    dest = home / "dagster.yaml"
    text = (REPO / "deploy" / "team" / "dagster.yaml").read_text()
    if max_concurrent_runs is not None:
        raw = yaml.safe_load(text)
        raw["concurrency"]["runs"]["max_concurrent_runs"] = max_concurrent_runs
        text = yaml.safe_dump(raw, sort_keys=False)
    dest.write_text(text)
    return dest


def postgres_env(port: int) -> dict[str, str]:
    """The variables deploy/team/dagster.yaml reads, for a server from :func:`postgres_server`."""
    return {"DAGSTER_PG_URL": f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"}


def write_workspace(home: Path, module: str = "medtrinity_assets_tests.support.ops_location") -> Path:
    """A workspace file that loads this repository's code location."""
    dest = home / "workspace.yaml"
    dest.write_text(yaml.safe_dump({"load_from": [{"python_module": {
        "module_name": module, "working_directory": str(REPO), "location_name": "medtrinity"}}]}))
    return dest


def service_env(home: Path, config: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"DAGSTER_HOME": str(home), "MEDTRINITY_CONFIG": str(config), "DAGSTER_DISABLE_TELEMETRY": "1",
                "PYTHONUNBUFFERED": "1", "MEDTRINITY_AUTOMATION": "stopped"})
    env.update(extra)
    return env


def stop_process_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group started by us, wait, then SIGKILL what is left."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_until(predicate, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
