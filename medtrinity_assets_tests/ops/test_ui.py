"""The web UI as a user meets it: ``dagster dev`` on 127.0.0.1, GraphQL for the graph, the partitions and
a launch, then a headless Chromium screenshot of the lineage page that must show the graph."""

import os
import shutil
import subprocess
import tempfile
import time

import httpx
import numpy as np
import pytest

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

LOCATION = "medtrinity"  # workspace.yaml, as `make ui` starts it
REPO_SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}
ERROR_MARKERS = ("Something went wrong", "An unexpected error", "PythonError", "Failed to fetch",
                 "could not be loaded", "DagsterInvalidDefinitionError", "Unexpected GraphQL error")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=15000", "--window-size=1400,900"]


class UI:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(timeout=60)

    def gql(self, query: str, **variables):
        r = self.client.post(f"{self.base}/graphql", json={"query": query, "variables": variables})
        r.raise_for_status()
        body = r.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def up(self) -> bool:
        try:
            return self.client.get(f"{self.base}/server_info", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def launch(self, job: str, partition: str, dims: dict[str, str] | None = None, assets: list[str] | None = None) -> str:
        tags = [{"key": "dagster/partition", "value": partition}]
        tags += [{"key": f"dagster/partition/{k}", "value": v} for k, v in (dims or {}).items()]
        data = self.gql(
            """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
                 ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
                 ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }""",
            p={"selector": {**REPO_SELECTOR, "jobName": job,
                            **({"assetSelection": [{"path": [a]} for a in assets]} if assets else {})},
               "executionMetadata": {"tags": tags}, "runConfigData": "{}"},
        )["launchRun"]
        assert data["__typename"] == "LaunchRunSuccess", data
        return data["run"]["runId"]

    def wait_run(self, run_id: str, timeout: float) -> str:
        def finished():
            status = self.gql("query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", id=run_id)["runOrError"]["status"]
            return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

        return wait_until(finished, timeout, interval=1.0, what=f"run {run_id}")


def _chromium(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        return subprocess.run([chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.skipif(chromium_binary() is None and not os.environ.get("CI"),  # CI installs it: there it must run
                    reason="no chromium; run scripts/services.sh as root")
def test_dagster_dev_graph_partitions_launch_and_lineage_screenshot(tmp_path):
    cfg_path = write_tiny_sources(tmp_path, n_sources=2, images_per_source=3, shards=2)
    home = tmp_path / "dagster_home"
    write_local_instance_yaml(home)
    port = free_port()
    env = service_env(home, cfg_path)
    log_path = tmp_path / "dagster_dev.log"
    with log_path.open("w") as log:
        # `env --default-signal` undoes the ignored SIGINT/SIGTERM a background start inherits
        server = subprocess.Popen(
            ["env", "--default-signal=INT,TERM", DAGSTER_BIN, "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml")],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ui = UI(port)
    try:
        wait_until(ui.up, 120, what=f"/server_info on port {port} (log: {log_path})")

        # the asset graph, as the UI gets it
        nodes = ui.gql("{ assetNodes { assetKey { path } dependencyKeys { path } hasAssetChecks "
                       "partitionDefinition { type dimensionTypes { name type } } } }")["assetNodes"]
        by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert {"source_manifest", "images"} <= set(by_key)
        assert ["source_manifest"] in [d["path"] for d in by_key["images"]["dependencyKeys"]]
        assert {d["name"] for d in by_key["images"]["partitionDefinition"]["dimensionTypes"]} == {"source", "shard"}
        assert by_key["images"]["hasAssetChecks"], "the images checks are not visible in the UI"

        # a user adds the sources as partitions (the Partitions tab's "Add partition")
        for name in ("tiny_0", "tiny_1"):
            added = ui.gql("""mutation($r: RepositorySelector!, $k: String!) { addDynamicPartition(
                repositorySelector: $r, partitionsDefName: "source", partitionKey: $k) { __typename } }""",
                           r=REPO_SELECTOR, k=name)["addDynamicPartition"]["__typename"]
            assert added == "AddDynamicPartitionSuccess"
        dims = ui.gql("""{ assetNodeOrError(assetKey: {path: ["images"]}) { ... on AssetNode {
                          partitionKeysByDimension { name partitionKeys } } } }""")["assetNodeOrError"]["partitionKeysByDimension"]
        assert {d["name"]: d["partitionKeys"] for d in dims} == {"shard": ["s00", "s01"], "source": ["tiny_0", "tiny_1"]}

        # launch the source's manifest (one partition), then a per-source backfill of its images (every
        # shard of tiny_0, as the Partitions tab's "Materialize" does); the daemon of `dagster dev` runs them.
        # Only `images`: rois/context/triplets need the models and indexes built first.
        t0 = time.time()
        assert ui.wait_run(ui.launch("source_manifest_job", "tiny_0"), 150) == "SUCCESS"
        shard_keys = ["s00|tiny_0", "s01|tiny_0"]
        backfill = ui.gql("""mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
            __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
                          p={"partitionNames": shard_keys, "assetSelection": [{"path": ["images"]}],
                             "title": "images of tiny_0"})["launchPartitionBackfill"]
        assert backfill["__typename"] == "LaunchBackfillSuccess", backfill
        status = wait_until(lambda: (lambda st: st if st != "REQUESTED" else None)(ui.gql(
            "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }",
            id=backfill["backfillId"])["partitionBackfillOrError"]["status"]), 180, interval=2.0, what="the backfill")
        assert status == "COMPLETED_SUCCESS", f"backfill ended {status}; see {log_path}"
        launch_s = time.time() - t0
        mats = ui.gql("""{ assetNodeOrError(assetKey: {path: ["images"]}) { ... on AssetNode {
                          assetMaterializations(partitions: ["s00|tiny_0", "s01|tiny_0", "s00|tiny_1"]) { partition } } } }""")
        assert sorted(m["partition"] for m in mats["assetNodeOrError"]["assetMaterializations"]) == shard_keys

        # the lineage page in a real browser
        url = f"{ui.base}/assets/source_manifest?view=lineage&lineageScope=downstream&lineageDepth=6"
        shot = tmp_path / "lineage.png"
        out = _chromium([f"--screenshot={shot}", url])
        assert shot.is_file(), out.stderr[-2000:]
        dom = _chromium(["--dump-dom", url]).stdout
    finally:
        stop_process_group(server, timeout=30)
    assert server.returncode is not None

    from PIL import Image

    img = Image.open(shot).convert("RGB")
    pixels = np.asarray(img, dtype=np.float32)
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert img.size == (1400, 900)
    assert shot.stat().st_size > 30_000 and pixels.std() > 10 and colours > 64, (shot.stat().st_size, pixels.std(), colours)
    for name in ("source_manifest", "images", "Lineage"):
        assert name in dom, f"{name!r} not on the rendered lineage page"
    errors = [m for m in ERROR_MARKERS if m in dom]
    assert not errors, errors
    dest = REPO / "docs" / "lineage.png"
    if os.environ.get("MEDTRINITY_UPDATE_SCREENSHOT") or not dest.exists():
        dest.parent.mkdir(exist_ok=True)
        shutil.copy(shot, dest)
    print(f"ui: manifest run + per-source backfill in {launch_s:.1f}s, screenshot {shot.stat().st_size} B, {colours} colours")
