"""What a Dagster user sees after `medtrinity run`: named runs with their source/shard tags on the job's
page (not `__ephemeral_asset_job__`), and, after a generator setting and a model version change, the
dependent partitions marked stale and the others fresh -- over GraphQL and in a headless Chromium."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medtrinity_assets_tests.ops.test_ui import UI, _chromium
from medtrinity_assets_tests.support.ops import (
    DAGSTER_BIN,
    REPO,
    chromium_binary,
    free_port,
    service_env,
    stop_process_group,
    wait_until,
    write_local_instance_yaml,
    write_tiny_sources,
)

pytestmark = pytest.mark.slow

LOCATION = "medtrinity"
REPO_LABEL = f"__repository__@{LOCATION}"
MEDTRINITY = str(Path(sys.executable).with_name("medtrinity"))
MODELS = "models:\n  - name: ct_anatomy\n    kind: builtin\n    version: \"{version}\"\n    applies_to: {{modalities: [CT]}}\n"

STALE = """query($key: [String!]!, $pk: String) { assetNodeOrError(assetKey: {path: $key}) { ... on AssetNode {
             staleStatus(partition: $pk) staleCauses(partition: $pk) { reason category } } } }"""


def _stale(ui: UI, asset: str, partition: str | None = None) -> tuple[str, list[str]]:
    node = ui.gql(STALE, key=[asset], pk=partition)["assetNodeOrError"]
    return node["staleStatus"], [c["reason"] for c in node["staleCauses"]]


@pytest.mark.skipif(chromium_binary() is None and not os.environ.get("CI"), reason="no chromium; run scripts/services.sh as root")
def test_cli_runs_are_named_and_tagged_and_changes_mark_exactly_their_partitions_stale(tmp_path):
    cfg_path = write_tiny_sources(tmp_path, n_sources=2, images_per_source=2, shards=2)
    models = tmp_path / "models.yaml"
    models.write_text(MODELS.format(version="1.0"))
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["models"] = "models.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    home = tmp_path / "dagster_home"
    write_local_instance_yaml(home)
    env = service_env(home, cfg_path)

    ran = subprocess.run([MEDTRINITY, "run", "--config", str(cfg_path), "--stages", "ingest", "rois", "knowledge", "triplets",
                          "--quiet"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert ran.returncode == 0, ran.stderr[-3000:]

    # the user changes the generator (phrasing seed: part of the generator's fingerprint, like the prompt) and
    # bumps a model's version; then opens the UI on the same home
    cfg["generator"] = {"seed": 3}
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    models.write_text(MODELS.format(version="1.1"))

    port = free_port()
    log_path = tmp_path / "dagster_dev.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            ["env", "--default-signal=INT,TERM", DAGSTER_BIN, "dev", "-h", "127.0.0.1", "-p", str(port), "-w",
             str(REPO / "workspace.yaml")], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ui = UI(port)
    try:
        wait_until(ui.up, 180, what=f"/server_info on port {port} (log: {log_path})")

        # named runs, filed under the code location as the Jobs page asks for them
        runs = ui.gql("""query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results {
                            runId jobName status tags { key value } } } } }""",
                      f={"pipelineName": "source_shard_job", "tags": [{"key": ".dagster/repository", "value": REPO_LABEL}]})
        results = runs["runsOrError"]["results"]
        assert len(results) == 4 and {r["status"] for r in results} == {"SUCCESS"}
        tagged = {(t["medtrinity/source"], t["medtrinity/shard"]) for t in
                  ({x["key"]: x["value"] for x in r["tags"]} for r in results)}
        assert tagged == {(s, sh) for s in ("tiny_0", "tiny_1") for sh in ("s00", "s01")}
        jobs = ui.gql("""{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
                          ... on RepositoryLocation { repositories { pipelines { name runs(limit: 1) { id } } } } } } } } }""")
        entry = next(e for e in jobs["workspaceOrError"]["locationEntries"] if e["name"] == LOCATION)
        pipelines = {p["name"]: p["runs"] for p in entry["locationOrLoadError"]["repositories"][0]["pipelines"]}
        assert all(pipelines[j] for j in ("models_job", "knowledge_job", "source_manifest_job", "source_shard_job"))
        assert not any(j.startswith("__") and runs_ for j, runs_ in pipelines.items())

        # staleness: the generator change touches the triplets only; the model bump the registry only
        for source in ("tiny_0", "tiny_1"):
            for shard in ("s00", "s01"):
                pk = f"{shard}|{source}"
                status, causes = _stale(ui, "triplets", pk)
                assert status == "STALE" and any("code version" in c for c in causes), (pk, causes)
                for fresh in ("images", "rois", "retrieved_passages"):
                    assert _stale(ui, fresh, pk)[0] == "FRESH", (fresh, pk, _stale(ui, fresh, pk))
        assert _stale(ui, "expert_models")[0] == "STALE"
        assert _stale(ui, "knowledge_index", "core")[0] == "FRESH"

        # the same, in a real browser
        shots = {}
        for name, url in (("job_runs", f"{ui.base}/locations/{LOCATION}/jobs/source_shard_job/runs"),
                          ("stale", f"{ui.base}/assets/expert_models")):
            shots[name] = tmp_path / f"{name}.png"
            out = _chromium([f"--screenshot={shots[name]}", url])
            assert shots[name].is_file(), out.stderr[-2000:]
        runs_dom = _chromium(["--dump-dom", f"{ui.base}/locations/{LOCATION}/jobs/source_shard_job/runs"]).stdout
        stale_dom = _chromium(["--dump-dom", f"{ui.base}/assets/expert_models"]).stdout
    finally:
        stop_process_group(server, timeout=30)

    assert "source_shard_job" in runs_dom and "tiny_0" in runs_dom and results[0]["runId"][:8] in runs_dom
    assert "Unsynced" in stale_dom  # the UI's word for a stale asset (its graph node carries the same mark)
    for name, shot in shots.items():
        assert shot.stat().st_size > 30_000, name
        dest = REPO / "docs" / f"ui_{name}.png"
        if os.environ.get("MEDTRINITY_UPDATE_SCREENSHOT") or not dest.exists():
            shutil.copy(shot, dest)
