"""The ``medtrinity`` command: run the graph without the UI, build the demo, query the catalog.

``run`` launches the pipeline through Dagster itself on a persistent ``DAGSTER_HOME``, so each
run, its logs and its metadata show in the web UI afterwards, with a progress bar per stage.

Nothing surprises: the configuration is checked completely before any work (exit 2 and one line
naming the file, the entry and the field), unknown ``--stages``/``--sources`` are refused (exit 2),
and catalog or query errors are one line too.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

EXIT_FAILED_RUNS = 1  # the pipeline ran, some runs failed (see the UI)
EXIT_USAGE = 2  # bad configuration, arguments or query: nothing was run

EXAMPLES = """\
examples:
  medtrinity demo                                      build the demo sources, run everything on them
  medtrinity run --config my_sources.yaml              every stage, every source of a YAML
  medtrinity run --config my_sources.yaml --sources ct_set --stages ingest rois
  medtrinity catalog "select modality, count(*) from images group by 1"
  medtrinity kb search "hypodense kidney lesion" --k 5
  medtrinity ui                                        the Dagster web UI on 127.0.0.1:3000

exit codes: 0 ran (inputs may have been quarantined), 1 some runs failed (see the UI),
            2 bad configuration, arguments or query (nothing was run)
environment: MEDTRINITY_CONFIG (default --config), DAGSTER_HOME, MEDTRINITY_SALT
"""


class UsageError(Exception):
    """A mistake in what the user asked for; printed as one line, exit code 2."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medtrinity-assets")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed)"


def _prepare_env(config: Path, data_root: Path) -> None:
    """Point the code location at ``config`` and give Dagster a persistent home beside the data."""
    os.environ["MEDTRINITY_CONFIG"] = str(config.resolve())
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(data_root.parent / ".dagster_home")
    from medtrinity_assets.dagster_home import prepare_home

    prepare_home(Path(os.environ["DAGSTER_HOME"]))


def stage_names() -> tuple[str, ...]:
    """The pipeline's stages: its asset groups, as the code location declares them."""
    from medtrinity_assets.definitions import STAGE_NAMES

    return STAGE_NAMES


def _check_choices(asked: list[str] | None, known: list[str] | tuple[str, ...], what: str) -> None:
    if asked is None:
        return
    if not asked:
        raise UsageError(f"--{what} needs at least one name; known: {', '.join(known)}")
    unknown = [a for a in asked if a not in known]
    if unknown:
        import difflib

        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(known), n=1)
            hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
        raise UsageError(f"unknown {what.rstrip('s')}{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
                         f"known: {', '.join(known)}")


def cmd_run(args: argparse.Namespace) -> int:
    from medtrinity_assets.config import load_config

    config = Path(args.config)
    cfg = load_config(config)  # everything checked, before Dagster loads anything
    _check_choices(args.sources, [s.name for s in cfg.sources], "sources")
    _prepare_env(config, cfg.data_root)
    _check_choices(args.stages, stage_names(), "stages")
    from medtrinity_assets.runner import run_pipeline
    from medtrinity_assets.storage import DataLayout, remove_stale_exports_staging

    removed = remove_stale_exports_staging(DataLayout(cfg.data_root))
    if removed and not args.quiet:
        print(f"removed {len(removed)} staging folder(s) left by an interrupted run", file=sys.stderr)
    summary = run_pipeline(config, sources=args.sources, stages=args.stages, quiet=args.quiet)
    print(json.dumps(summary, indent=2))
    return 0 if not summary.get("failed_runs") else EXIT_FAILED_RUNS


def cmd_demo(args: argparse.Namespace) -> int:
    from medtrinity_assets.config import read_config
    from medtrinity_assets.demo.build import build_demo

    config = Path(args.config)
    cfg = read_config(config)  # the model now; the files once the demo folders exist
    dest = config.resolve().parent / "demo"
    t0 = time.time()
    print(f"Building the demo sources under {dest} ...", flush=True)
    build_demo(dest)
    print(f"  done in {time.time() - t0:.0f} s", flush=True)
    rc = cmd_run(args)
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
    from medtrinity_assets.catalog import CatalogError, query, refresh_catalog
    from medtrinity_assets.config import read_config
    from medtrinity_assets.storage import DataLayout

    cfg = read_config(args.config)  # the catalog needs data_root only, not the source folders
    layout = DataLayout(cfg.data_root)
    if not layout.root.is_dir():
        raise UsageError(f"{cfg.config_path}: data_root {layout.root} does not exist yet; "
                         f"run `medtrinity run --config {args.config}` first")
    try:
        refresh_catalog(layout)
        table = query(layout, args.sql)
    except CatalogError as exc:
        raise UsageError(str(exc)) from None
    for row in table.to_pylist():
        print(json.dumps(row, default=str, ensure_ascii=False))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from medtrinity_assets.config import read_config

    config = Path(args.config)
    _prepare_env(config, read_config(config).data_root)
    from medtrinity_assets.dagster_home import fail_orphaned_runs, open_instance

    orphaned = fail_orphaned_runs(open_instance())
    if orphaned:
        print(f"marked {len(orphaned)} run(s) failed whose process was gone (killed mid-way)", flush=True)
    repo = Path(__file__).resolve().parent.parent
    cmd = ["dagster", "dev", "-h", args.host, "-p", str(args.port), "-w", str(repo / "workspace.yaml")]
    bindir = Path(sys.executable).parent
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
    print(f"Dagster UI on http://{args.host}:{args.port}  (DAGSTER_HOME={os.environ['DAGSTER_HOME']})", flush=True)
    os.chdir(repo)
    os.execvp(cmd[0], cmd)
    return 0  # not reached


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line and exit code 2, with the usage of the command at fault."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    default_config = os.environ.get("MEDTRINITY_CONFIG", "data/sources.yaml")
    p = _Parser(prog="medtrinity", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", default=default_config, help="sources YAML (default: %(default)s)")

    run = sub.add_parser(
        "run", help="run every stage for every source of a config", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  medtrinity run --config my_sources.yaml\n"
               "  medtrinity run --config my_sources.yaml --sources ct_set mr_set --stages ingest rois\n",
    )
    add_config(run)
    run.add_argument("--sources", nargs="*", metavar="NAME", help="only these sources (default: all)")
    run.add_argument("--stages", nargs="*", metavar="STAGE",
                     help="only these stages, the asset groups: ingest rois knowledge triplets quality exports")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="build the demo sources offline, then run the whole graph on them",
                          epilog="example:\n  medtrinity demo   (= make demo)",
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config(demo)
    demo.set_defaults(func=cmd_demo, sources=None, stages=None, quiet=False)

    cat = sub.add_parser(
        "catalog", help="run SQL against the DuckDB catalog, print JSON lines",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  medtrinity catalog \"select modality, count(*) as n from images group by 1\"\n"
               "  medtrinity catalog \"select reason, count(*) from quarantine group by 1\" --config my_sources.yaml\n"
               "views: manifest, images, quarantine, rois, passages, context, triplets and the quality tables",
    )
    add_config(cat)
    cat.add_argument("sql")
    cat.set_defaults(func=cmd_catalog)

    ui = sub.add_parser("ui", help="start the Dagster web UI on this config",
                        epilog="example:\n  medtrinity ui --port 3001", formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config(ui)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    from medtrinity_assets.knowledge.cli import add_commands as add_kb_commands

    add_kb_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    from medtrinity_assets.config import ConfigError
    try:
        return int(args.func(args) or 0)
    except (ConfigError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
