"""The ``medtrinity`` command: run the graph without the UI, build the demo, query the catalog.

``run`` materialises every asset for every source of a config through Dagster itself
(``materialize`` on a persistent ``DAGSTER_HOME``), so each run, its logs and its metadata show in
the web UI afterwards. One run per partition, stage by stage, with a progress bar per stage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path


def _prepare_env(config: Path) -> None:
    """Point the code location at ``config`` and give Dagster a persistent home beside the data."""
    os.environ["MEDTRINITY_CONFIG"] = str(config.resolve())
    if not os.environ.get("DAGSTER_HOME"):
        from medtrinity_assets.config import load_config

        home = load_config(config).data_root.parent / ".dagster_home"
        os.environ["DAGSTER_HOME"] = str(home)
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    yaml_path = home / "dagster.yaml"
    if not yaml_path.exists():
        yaml_path.write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")


def cmd_run(args: argparse.Namespace) -> int:
    from medtrinity_assets.config import ConfigError, load_config

    config = Path(args.config)
    try:
        load_config(config)  # fail fast, naming the entry and field, before Dagster loads anything
        _prepare_env(config)
        from medtrinity_assets.runner import run_pipeline
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = run_pipeline(config, sources=args.sources, stages=args.stages, quiet=args.quiet)
    print(json.dumps(summary, indent=2))
    return 0 if not summary.get("failed_runs") else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from medtrinity_assets.demo.build import build_demo

    config = Path(args.config)
    dest = config.parent / "demo"
    t0 = time.time()
    print(f"Building the demo sources under {dest} ...", flush=True)
    build_demo(dest)
    print(f"  done in {time.time() - t0:.0f} s", flush=True)
    rc = cmd_run(args)
    from medtrinity_assets.config import load_config

    cfg = load_config(config)
    print(
        "\nExports:      {exports}\nDataset card: {card}\nCatalog:      {catalog}\n"
        "Open the UI:  make ui   (then http://127.0.0.1:3000; runs and metadata are in {home})".format(
            exports=cfg.data_root / "exports",
            card=cfg.data_root / "card" / "README.md",
            catalog=cfg.data_root / "catalog.duckdb",
            home=os.environ.get("DAGSTER_HOME"),
        )
    )
    return rc


def cmd_catalog(args: argparse.Namespace) -> int:
    from medtrinity_assets.catalog import query, refresh_catalog
    from medtrinity_assets.config import load_config
    from medtrinity_assets.storage import DataLayout

    layout = DataLayout(load_config(args.config).data_root)
    refresh_catalog(layout)
    table = query(layout, args.sql)
    for row in table.to_pylist():
        print(json.dumps(row, default=str))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    _prepare_env(Path(args.config))
    repo = Path(__file__).resolve().parent.parent
    cmd = ["dagster", "dev", "-h", args.host, "-p", str(args.port), "-w", str(repo / "workspace.yaml")]
    bindir = Path(sys.executable).parent
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
    print(f"Dagster UI on http://{args.host}:{args.port}  (DAGSTER_HOME={os.environ['DAGSTER_HOME']})", flush=True)
    os.chdir(repo)
    os.execvp(cmd[0], cmd)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    default_config = os.environ.get("MEDTRINITY_CONFIG", "data/sources.yaml")
    p = argparse.ArgumentParser(prog="medtrinity", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def add_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", default=default_config, help="sources YAML (default: %(default)s)")

    run = sub.add_parser("run", help="materialise every asset for every source of a config")
    add_config(run)
    run.add_argument("--sources", nargs="*", help="only these sources (default: all)")
    run.add_argument("--stages", nargs="*", help="only these stages: ingest rois knowledge triplets exports")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="build the demo sources offline, then run the whole graph on them")
    add_config(demo)
    demo.set_defaults(func=cmd_demo, sources=None, stages=None, quiet=False)

    cat = sub.add_parser("catalog", help="run SQL against the DuckDB catalog, print JSON lines")
    add_config(cat)
    cat.add_argument("sql")
    cat.set_defaults(func=cmd_catalog)

    ui = sub.add_parser("ui", help="start the Dagster web UI on this config")
    add_config(ui)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    try:
        from medtrinity_assets.knowledge.cli import add_commands as add_kb_commands
    except ImportError:  # pragma: no cover - knowledge CLI not installed
        add_kb_commands = None
    if add_kb_commands is not None:
        add_kb_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
