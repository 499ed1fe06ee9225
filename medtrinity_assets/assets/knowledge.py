"""Knowledge stage: ``knowledge_corpus`` [corpus] -> ``knowledge_index`` [corpus] -> ``retrieved_passages``
[source x shard], its checks, and its sensors.

The domain work lives in :mod:`medtrinity_assets.knowledge`; this module wires it to Dagster. The
encoder is an observable source asset whose data version is the encoder id, so a new encoder
marks every index stale. ``knowledge_corpus_sensor`` adds corpora from the sources YAML and rebuilds
indexes whose files or encoder changed; ``encoder_change_sensor`` reruns the retrieved passages (and
what is built from them) of the partitions retrieved with another encoder than the one observed now.
"""

import hashlib
import time
import warnings
from pathlib import Path

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    DataVersion,
    Definitions,
    Failure,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    asset,
    observable_source_asset,
    sensor,
)

from medtrinity_assets.assets.partition_checks import check_spec, non_empty_check, schema_check
from medtrinity_assets.catalog import refresh_catalog
from medtrinity_assets.code_versions import code_version
from medtrinity_assets.config import PipelineConfig
from medtrinity_assets.jobs import knowledge_job
from medtrinity_assets.knowledge.chunking import passage_batches, tokenizer_for
from medtrinity_assets.knowledge.context import build_context
from medtrinity_assets.knowledge.corpus import IngestReport, read_corpus
from medtrinity_assets.knowledge.embedding import resolve_encoder
from medtrinity_assets.knowledge.index import (
    MANIFEST_FILE,
    CorpusIndex,
    build_index_folder,
    index_is_current,
    read_manifest,
    write_passages,
)
from medtrinity_assets.knowledge.retrieval import Retriever
from medtrinity_assets.partitions import corpus_partitions, source_shard_partitions, split_key
from medtrinity_assets.resources import EmbedderResource, PipelineResource
from medtrinity_assets.sensors import default_sensor_status, targeted_rerun_sensor
from medtrinity_assets.storage import read_table, write_table
from medtrinity_assets.tables import RETRIEVED_PASSAGES_SCHEMA

STAGE = "knowledge"
RETRIEVED = "retrieved_passages"  # asset key and table name


def _observe_encoder(context) -> DataVersion:
    return DataVersion(context.resources.embedder.encoder_id())


with warnings.catch_warnings():  # observable source assets are marked beta; the behaviour used here is basic
    warnings.simplefilter("ignore")
    knowledge_encoder = observable_source_asset(
        name="knowledge_encoder",
        group_name=STAGE,
        required_resource_keys={"embedder"},
        description="The sentence encoder in use; its data version is name@digest of its files.",
    )(_observe_encoder)


@asset(
    code_version=code_version("knowledge_corpus"),
    partitions_def=corpus_partitions,
    group_name=STAGE,
    kinds={"python", "parquet"},
    description="A knowledge corpus read and cut into token passages (tables/passages/<corpus>.parquet).",
)
def knowledge_corpus(context: AssetExecutionContext, pipeline: PipelineResource,
                     embedder: EmbedderResource) -> MaterializeResult:
    cfg, layout = pipeline.config(), pipeline.layout()
    spec = cfg.corpus(context.partition_key)
    settings = embedder.settings()
    tokenizer = tokenizer_for(resolve_encoder(settings.encoder).path)
    report = IngestReport()
    path = layout.table_path("passages", spec.name)
    # streamed: a corpus of millions of articles is written batch by batch, never held whole
    rows, digest = write_passages(path, passage_batches(spec.name, read_corpus(spec.format, spec.path, report),
                                                        tokenizer, settings.chunk_tokens, settings.overlap))
    for example in report.examples:
        context.log.warning(f"corpus {spec.name}: skipped {example}")
    if rows == 0:
        path.unlink(missing_ok=True)
        raise Failure(f"corpus {spec.name!r} ({spec.format}, {spec.path}) gave no passages; "
                      f"{report.bad} bad entries, e.g. {report.examples[:3]}")
    refresh_catalog(layout)
    return MaterializeResult(
        metadata={
            "format": spec.format,
            "path": str(spec.path),
            "files": report.files,
            "documents": report.documents,
            "bad_entries": report.bad,
            "bad_examples": MetadataValue.md("\n".join(f"- {e}" for e in report.examples) or "none"),
            "passages": rows,
            "tokenizer": tokenizer.name,
            "chunk_tokens": settings.chunk_tokens,
            "overlap": settings.overlap,
            "dagster/row_count": rows,
        },
        data_version=DataVersion(digest[:16]),
    )


@asset(
    code_version=code_version("knowledge_index"),
    partitions_def=corpus_partitions,
    deps=[knowledge_corpus, knowledge_encoder],
    group_name=STAGE,
    kinds={"python", "faiss"},
    description="Embeddings of a corpus's passages in a FAISS index (exact or HNSW/IVF by size) under knowledge/<corpus>/.",
)
def knowledge_index(context: AssetExecutionContext, pipeline: PipelineResource,
                    embedder: EmbedderResource) -> MaterializeResult:
    layout = pipeline.layout()
    corpus = context.partition_key
    settings = embedder.settings()
    passages = layout.table_path("passages", corpus)
    if not passages.is_file():
        raise Failure(f"{passages}: no passages for corpus {corpus!r}; materialise knowledge_corpus first")
    folder = layout.knowledge / corpus
    started = time.perf_counter()
    reused = index_is_current(folder, passages, embedder.encoder_id(), settings)
    if reused:
        m = read_manifest(folder)
        context.log.info(f"{corpus}: index already matches passages and encoder; not re-embedded")
    else:
        m = build_index_folder(corpus, passages, folder, embedder.load(), settings,
                               chunking={"chunk_tokens": settings.chunk_tokens, "overlap": settings.overlap})
    seconds = time.perf_counter() - started
    return MaterializeResult(
        metadata={
            "encoder": m.encoder,
            "kind": m.kind,
            "params": m.params,
            "dim": m.dim,
            "passages": m.count,
            "reused_existing_index": reused,
            "seconds": round(seconds, 2),
            "passages_per_second": round(m.count / seconds, 1) if seconds > 0 and not reused else None,
            "path": MetadataValue.path(str(folder)),
        },
        data_version=DataVersion(m.data_version),
    )


@asset(
    code_version=code_version("retrieved_passages"),
    name=RETRIEVED,
    partitions_def=source_shard_partitions,
    deps=[AssetDep("images"), AssetDep("rois"), AssetDep(knowledge_index, partition_mapping=AllPartitionMapping())],
    check_specs=[
        check_spec(RETRIEVED, "retrieved_passages_schema",
                   "The retrieved_passages partition has the columns the generator reads (RETRIEVED_PASSAGES_SCHEMA).",
                   blocking=True),
        check_spec(RETRIEVED, "retrieved_passages_non_empty", "Warns when a partition with images has no retrieved passages."),
    ],
    group_name=STAGE,
    kinds={"python", "parquet"},
    description="Top-k knowledge passages per image, from a query built of modality, organ, labels and ROI facts.",
)
def retrieved_passages(context: AssetExecutionContext, pipeline: PipelineResource,
                       embedder: EmbedderResource) -> MaterializeResult:
    cfg, layout = pipeline.config(), pipeline.layout()
    source, shard = split_key(context.partition_key)
    part = {"source": source, "shard": shard}
    settings = embedder.settings()
    images = read_table(layout.table_path("images", part))
    rois_path = layout.table_path("rois", part)
    rois = read_table(rois_path) if rois_path.exists() else None
    corpora = [c.name for c in cfg.corpora]
    folders = [layout.knowledge / c for c in corpora if (layout.knowledge / c / MANIFEST_FILE).is_file()]
    if not folders:
        raise Failure(f"no knowledge index under {layout.knowledge} for corpora {corpora}; materialise knowledge_index")
    retriever = Retriever([CorpusIndex.load(f) for f in folders], embedder.load())
    result = build_context(images, rois, retriever, settings.top_k, source, shard)
    write_table(layout.table_path(RETRIEVED, part), result.table)
    refresh_catalog(layout)
    preview = "\n".join(
        f"- `{r['sample_id'][:12]}` — *{r['query']}* → {'; '.join(r['titles'][:3])}"
        for r in result.table.slice(0, 3).to_pylist()
    )
    return MaterializeResult(
        metadata={
            "samples": result.table.num_rows,
            "unique_queries": result.unique_queries,
            "roi_facts_used": result.roi_facts_used,
            "corpora": retriever.corpora,
            "encoder": retriever.encoder.id,
            "top_k": settings.top_k,
            "dagster/row_count": result.table.num_rows,
            "preview": MetadataValue.md(preview or "no samples in this partition"),
        },
        check_results=[
            schema_check("retrieved_passages_schema", layout.table_path(RETRIEVED, part), RETRIEVED_PASSAGES_SCHEMA),
            non_empty_check("retrieved_passages_non_empty", result.table.num_rows, expected=images.num_rows > 0),
        ],
    )


def _corpus_stamp(path: Path) -> str:
    """Cheap change marker of a corpus's files (names, sizes, mtimes), not their bytes."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []
    for f in files:
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


@sensor(job=knowledge_job, minimum_interval_seconds=300, default_status=default_sensor_status(),
        description="Adds corpora of the sources YAML as partitions; rebuilds a corpus when its files or the encoder change.")
def knowledge_corpus_sensor(context: SensorEvaluationContext, pipeline: PipelineResource,
                            embedder: EmbedderResource) -> SensorResult:
    cfg = pipeline.config()
    known = set(context.instance.get_dynamic_partitions(corpus_partitions.name))
    enc = embedder.encoder_id()
    new = [c.name for c in cfg.corpora if c.name not in known]
    requests = [
        RunRequest(partition_key=c.name, run_key=f"{c.name}:{enc}:{_corpus_stamp(c.path)}")
        for c in cfg.corpora
        if c.path.exists()
    ]
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[corpus_partitions.build_add_request(new)] if new else [],
    )



def encoder_versions(cfg: PipelineConfig, instance: DagsterInstance) -> dict[str, str]:
    """The encoder in use, as Dagster last observed it: the data version of ``knowledge_encoder``
    (an observable source asset whose version is the encoder's name@digest). {} before any observation."""
    record = instance.get_latest_data_version_record(AssetKey("knowledge_encoder"))
    version = record.asset_event.data_version if record is not None and record.asset_event is not None else None
    return {"encoder": version} if version else {}


encoder_change_sensor = targeted_rerun_sensor(
    "encoder_change_sensor", AssetKey(RETRIEVED), encoder_versions, recorded_keys={"encoder": "encoder"},
    description="Rerun the retrieved passages (and triplets) of partitions retrieved with another encoder than the one "
    "observed now.",
)


defs = Definitions(
    assets=[knowledge_encoder, knowledge_corpus, knowledge_index, retrieved_passages],
    sensors=[knowledge_corpus_sensor, encoder_change_sensor],
)
