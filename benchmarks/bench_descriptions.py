"""Description quality: is every sentence informative, true to its facts, and are measured sizes right?

Two sets:
- **phantom**: seeded CT phantoms (``medtrinity_assets.demo.phantom``, a seed the demo does not use)
  written as NIfTI and run through the real stages -- ingest, ROI facts, retrieval over the bundled core
  corpus, the grounded generator -- then compared with the phantom's known truth (lesion sizes);
- **demo**: the triplets (and exports) of a finished ``medtrinity demo`` run under ``--demo-root``
  (default ``data/out``), scored as stored; skipped with a note when there is none.

Figures per set: fact coverage (share of the facts expressed), pipeline phrases (target 0), the most
frequent sentence's share of descriptions (target <= 2 %), distinct-2, knowledge use (share of
finding triplets with a hedged interpretive clause tied to a measurement, target >= 80 %),
contradiction rate (target 0) and, on the phantom, the median size error against truth (target
<= 10 %). Passage precision@3 (organ and finding match, target >= 0.8) is measured on labelled queries:
the phantom's findings plus hand-labelled cases of other modalities (``LABELLED_QUERIES``).

Run: ``python -m benchmarks.bench_descriptions [--quick] [--demo-root data/out]``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from medtrinity_assets.quality import description_metrics as M
from medtrinity_assets.roi.facts import RoiFacts

REPO = Path(__file__).resolve().parents[1]
PHANTOM_SEED = 7  # the demo uses seed 0: this set is held out from everything the demo shows
K = 3

# Hand-labelled retrieval cases beside the phantom's own findings: an image row, its finding ROIs, and the
# core-corpus entries whose organ and finding match (a passage about another finding or organ is a miss).
LABELLED_QUERIES: list[dict[str, Any]] = [
    {"image": {"modality": "MR", "organ": "brain", "labels": ["glioma"]},
     "rois": [{"label": "glioma", "kind": "finding", "region": "brain", "intensity": "hyperintense",
               "texture": "heterogeneous", "margin": "ill_defined", "shape": "irregular"}],
     "relevant": ["brain_glioblastoma", "brain_low_grade_glioma"]},
    {"image": {"modality": "CR", "organ": "chest", "labels": ["lung nodule"]}, "rois": [],
     "relevant": ["chest_pulmonary_nodule", "chest_lung_metastases"]},
    {"image": {"modality": "FUNDUS", "organ": "eye", "labels": ["normal fundus"]}, "rois": [],
     "relevant": ["fundus_normal"]},
    {"image": {"modality": "HISTOLOGY", "organ": "colon", "labels": ["colorectal adenocarcinoma"]}, "rois": [],
     "relevant": ["histo_colorectal_adenocarcinoma"]},
    {"image": {"modality": "US", "organ": "abdomen"},
     "rois": [{"label": "liver cyst", "kind": "finding", "region": "liver", "intensity": "hypoechoic",
               "texture": "homogeneous", "margin": "well_defined", "shape": "round"}],
     "relevant": ["liver_simple_cyst"]},
    {"image": {"modality": "CT", "organ": "abdomen", "labels": ["kidney stone"]},
     "rois": [{"label": "kidney stone", "kind": "finding", "region": "kidney", "intensity": "hyperdense",
               "texture": "homogeneous", "margin": "well_defined", "shape": "round"}],
     "relevant": ["kidney_stone"]},
    {"image": {"modality": "MG", "organ": "breast", "labels": ["breast mass"]},
     "rois": [{"label": "mass", "kind": "finding", "region": "breast", "intensity": "brighter",
               "margin": "ill_defined", "shape": "irregular"}],
     "relevant": ["breast_carcinoma", "breast_fibroadenoma", "breast_cyst"]},
    {"image": {"modality": "DERM", "organ": "skin", "labels": ["melanoma"]}, "rois": [],
     "relevant": ["skin_melanoma"]},
    {"image": {"modality": "CT", "organ": "head", "labels": ["intracerebral haemorrhage"]},
     "rois": [{"label": "haemorrhage", "kind": "finding", "region": "brain", "intensity": "hyperdense",
               "texture": "homogeneous", "shape": "oval"}],
     "relevant": ["brain_intracerebral_haemorrhage"]},
    {"image": {"modality": "CT", "organ": "chest", "labels": ["pleural effusion"]}, "rois": [],
     "relevant": ["chest_pleural_effusion"]},
]
# the phantom's lesion kinds -> core entries about that finding in that organ
PHANTOM_RELEVANT: dict[str, list[str]] = {
    "liver tumour": ["liver_hcc", "liver_metastasis", "liver_haemangioma"],
    "liver cyst": ["liver_simple_cyst"],
    "kidney cyst": ["kidney_simple_cyst"],
    "lung nodule": ["chest_pulmonary_nodule", "chest_lung_metastases"],
    "spleen lesion": ["spleen_focal_lesion"],
    "hyperdense liver lesion": ["liver_hyperdense_focal_lesion", "liver_hcc", "liver_metastasis", "liver_haemangioma",
                                "liver_simple_cyst", "liver_abscess"],
}


# ---- shared scoring ------------------------------------------------------------------------------


def score_triplets(rows: list[dict[str, Any]], rois_by_sample: dict[str, list[RoiFacts]],
                   passage_texts: dict[str, str], region_of: dict[str, str] | None = None) -> dict[str, Any]:
    """Every text figure of one set of triplet rows (status ok) with their ROI records."""
    from medtrinity_assets.quality.consistency import score_rows

    ok = [r for r in rows if r.get("status") == "ok" and r.get("description")]
    descriptions = [r["description"] for r in ok]
    attributes = [" ".join(v for v in (r.get("attributes") or {}).values() if v) for r in ok]
    pipeline = Counter(p.lower() for t in descriptions + attributes for p in M.pipeline_phrases(t))
    sentence, share = M.most_frequent_sentence(descriptions)
    coverage = M.Coverage()
    finding_triplets = interpretive = 0
    for r in ok:
        rois = rois_by_sample.get(r["sample_id"], [])
        region = (region_of or {}).get(r["sample_id"]) or r.get("organ") or ""
        coverage.add({f"image.{k}": v for k, v in M.image_facts_expressed(r["description"], r.get("modality") or "", region).items()})
        findings = [x for x in rois if x.is_finding]
        for roi in sorted(findings, key=lambda x: -(x.area_fraction or 0))[:3]:  # the described ones
            coverage.add({f"roi.{k}": v for k, v in M.roi_facts_expressed(r["description"], roi).items()})
        if findings:
            finding_triplets += 1
            clauses = json.loads(r.get("clauses_json") or "[]")
            texts = [passage_texts.get(c["source"].split(":", 1)[1], "") for c in M.knowledge_clauses(clauses)]
            if any(M.is_interpretive(c["text"], roi, texts) for c in M.knowledge_clauses(clauses) for roi in findings):
                interpretive += 1
    roi_rows = {sid: [x.to_row() for x in rs] for sid, rs in rois_by_sample.items()}
    contradictions = score_rows(ok, roi_rows)
    # pipeline phrases are counted above; the contradiction rate counts statements against the facts
    contradicted = sum(1 for issues in contradictions.per_triplet.values()
                       if any(i["kind"] != "pipeline_language" for i in issues))
    return {
        "triplets": len(ok),
        "fact_coverage": round(coverage.share, 4),
        "facts_checked": coverage.total,
        "facts_missed_by_kind": dict(coverage.missed or {}),
        "pipeline_phrase_count": sum(pipeline.values()),
        "pipeline_phrases_top": dict(pipeline.most_common(6)),
        "most_frequent_sentence_share": round(share, 4),
        "most_frequent_sentence": sentence[:160],
        "distinct_2": round(M.distinct_n(descriptions, 2), 4),
        "finding_triplets": finding_triplets,
        "knowledge_use": round(interpretive / finding_triplets, 4) if finding_triplets else None,
        "contradiction_rate": round(contradicted / len(ok), 4) if ok else None,
        "contradictions_by_kind": {k: v for k, v in contradictions.by_kind.items() if v and k != "pipeline_language"},
    }


# ---- the phantom set -----------------------------------------------------------------------------


def _write_phantoms(folder: Path, n: int) -> list[dict[str, Any]]:
    from medtrinity_assets.demo.phantom import make_phantom, write_label_nifti, write_nifti

    truth, rows = [], ["filename,findings,modality,organ"]
    for i in range(n):
        p = make_phantom(PHANTOM_SEED, i)
        orientation = "RAS" if i % 2 else "LPS"
        name = f"ct_{i:03d}.nii.gz"
        write_nifti(p, folder / "images" / name, orientation=orientation)
        write_label_nifti(p, folder / "labels" / name, orientation=orientation)
        rows.append(f"{name},{';'.join(les['name'] for les in p.lesions)},CT,abdomen")
        truth.append({"file": name, "spacing": list(p.spacing), "lesions": p.lesions})
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return truth


def _retriever():
    from medtrinity_assets.knowledge.chunking import passages_table, tokenizer_for
    from medtrinity_assets.knowledge.corpus import bundled_core_path, read_corpus
    from medtrinity_assets.knowledge.embedding import load_encoder
    from medtrinity_assets.knowledge.index import build_corpus_index
    from medtrinity_assets.knowledge.retrieval import Retriever
    from medtrinity_assets.knowledge.settings import KnowledgeSettings

    settings = KnowledgeSettings()
    encoder = load_encoder(settings.encoder)
    table = passages_table("core", read_corpus("core", bundled_core_path()), tokenizer_for(encoder.spec.path),
                           settings.chunk_tokens, settings.overlap)
    return Retriever([build_corpus_index("core", table, encoder, settings)], encoder)


def _passages(retriever) -> dict[str, Any]:
    """passage_id -> the generation stage's Passage (text without the title prefix), from the indexes."""
    from medtrinity_assets.generation.inputs import load_passages

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        import pyarrow.parquet as pq

        for ci in retriever.indexes:
            path = Path(tmp) / "tables" / "passages" / f"{ci.manifest.corpus}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(ci.passages, path)
            ids = set(ci.passages.column("passage_id").to_pylist())
            out.update(load_passages(Path(tmp), {ci.manifest.corpus: ids}))
    return out


def _true_diameter_mm(lesion: dict[str, Any], z: int, spacing: list[float]) -> float | None:
    """Area-equivalent diameter of the lesion's voxel mask on slice ``z`` (what the image holds)."""
    area = (lesion.get("slice_areas_px") or {}).get(z) or (lesion.get("slice_areas_px") or {}).get(str(z))
    if not area:
        return None
    return 2.0 * math.sqrt(area * spacing[1] * spacing[2] / math.pi)


def phantom_set(n: int, retriever) -> dict[str, Any]:

    from medtrinity_assets.config import load_config
    from medtrinity_assets.deid.paths import lookup
    from medtrinity_assets.demo.phantom import LABEL_NAMES
    from medtrinity_assets.generation.backends.grounded import GroundedBackend
    from medtrinity_assets.generation.inputs import assemble
    from medtrinity_assets.generation.prompt import load_template
    from medtrinity_assets.generation.run import generate_rows
    from medtrinity_assets.ingest import build_images, build_manifest
    from medtrinity_assets.knowledge.context import build_context
    from medtrinity_assets.roi.build import RoiSettings, describe_partition
    from medtrinity_assets.storage import DataLayout, rows_to_table
    from medtrinity_assets.tables import ROI_SCHEMA

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        truth = {t["file"]: t for t in _write_phantoms(tmp / "phantom", n)}
        names = "\n".join(f"      {k}: {v}" for k, v in LABEL_NAMES.items())
        cfg_path = tmp / "sources.yaml"
        cfg_path.write_text(
            f"data_root: {tmp / 'out'}\nshards: 1\nsalt: bench\ncontext_slices: 3\nsources:\n"
            f"  - name: phantom\n    format: nifti\n    path: {tmp / 'phantom' / 'images'}\n"
            f"    labels: {tmp / 'phantom' / 'labels'}\n    labels_csv: {tmp / 'phantom' / 'labels.csv'}\n"
            f"    modality: CT\n    organ: abdomen\n    licence: CC0-1.0\n    label_names:\n{names}\n"
            "rois:\n  label_kinds: {liver: anatomy, spleen: anatomy, kidney: anatomy, lung: anatomy, bone: anatomy}\n")
        cfg = load_config(cfg_path)
        layout = DataLayout(cfg.data_root)
        source = cfg.source("phantom")
        build_manifest(source, salt="bench", shards=1, layout=layout)  # the private file-key -> path table
        images = build_images(cfg, source, "s00", layout, salt="bench").table
        image_rows = images.to_pylist()
        paths = lookup(layout.root, [r["rel_path"] for r in image_rows])
        roi_rows, _ = describe_partition(image_rows, layout, "ground_truth", [], RoiSettings.from_config(cfg))
        context = build_context(images, rows_to_table(roi_rows, ROI_SCHEMA), retriever, K, "phantom", "s00").table
        passages = _passages(retriever)
        facts = assemble(image_rows, roi_rows, context.to_pylist(), passages, K)
        table, stats, _ = generate_rows(list(zip(facts, image_rows)), GroundedBackend(seed=0), load_template(),
                                        lambda p: b"", "s00")
        rows = table.to_pylist()
        seconds = time.perf_counter() - t0
    rois_by_sample = {f.sample_id: list(f.rois) for f in facts}
    out = score_triplets(rows, rois_by_sample, {pid: p.text for pid, p in passages.items()})
    # sizes against the truth
    errors, long_errors, unstated = [], [], 0
    by_id = {r["sample_id"]: r for r in rows}
    for img, f in zip(image_rows, facts):
        row = by_id[f.sample_id]
        if row.get("status") != "ok":
            continue
        vol = truth[Path(paths[img["rel_path"]]).name]
        clauses = json.loads(row["clauses_json"] or "[]")
        for roi in f.findings:
            les = next((x for x in vol["lesions"] if x["name"] == roi.label), None)
            d = _true_diameter_mm(les, img["slice_index"], vol["spacing"]) if les else None
            if d is None:
                continue
            text = " ".join(c["text"] for c in clauses  # the finding's own clauses, not its distances to others
                            if c["source"].startswith(f"roi:{roi.roi_id}.") and c["field"] != "relations")
            size = M.stated_size_mm(text)
            if size is None:
                unstated += 1
                continue
            errors.append(abs(math.sqrt(size[0] * size[1]) - d) / d)
            long_errors.append(abs(size[0] - d) / d)
    out.update({
        "phantoms": n,
        "images": len(image_rows),
        "sizes_compared": len(errors),
        "sizes_not_stated": unstated,
        "size_error_median": round(statistics.median(errors), 4) if errors else None,
        "size_error_p90": round(float(np.percentile(errors, 90)), 4) if errors else None,
        "long_axis_error_median": round(statistics.median(long_errors), 4) if long_errors else None,
        "seconds": round(seconds, 1),
    })
    # labelled retrieval queries: one per phantom finding kind seen, with its measured facts
    out["_queries"] = []
    seen: set[str] = set()
    for img, f in zip(image_rows, facts):
        for roi in f.findings:
            if roi.label in seen or roi.label not in PHANTOM_RELEVANT:
                continue
            seen.add(roi.label)
            rows_of = [r for r in roi_rows if r["sample_id"] == img["sample_id"] and r["status"] == "ok"
                       and (r["kind"] == "anatomy" or r["label"] == roi.label)]  # this finding's query alone
            out["_queries"].append({"image": {k: img[k] for k in ("modality", "organ", "labels", "slice_index")},
                                    "rois": rows_of, "relevant": PHANTOM_RELEVANT[roi.label], "name": roi.label})
    return out


# ---- passage precision on labelled queries --------------------------------------------------------


def passage_precision(queries: list[dict[str, Any]], retriever) -> dict[str, Any]:
    """Precision@3 of the context the pipeline builds for each labelled image (organ and finding match)."""
    from medtrinity_assets.knowledge.context import build_context
    from medtrinity_assets.storage import rows_to_table
    from medtrinity_assets.tables import IMAGE_SCHEMA, ROI_SCHEMA

    per_query = []
    for i, q in enumerate(queries):
        sid = f"q{i:03d}"
        image = {"sample_id": sid, "source": "bench", "slice_index": -1, **q["image"]}
        rois = [{**r, "sample_id": sid, "status": "ok"} for r in q["rois"]]
        images = rows_to_table([image], IMAGE_SCHEMA)
        roi_table = rows_to_table(rois, ROI_SCHEMA) if rois else None
        ctx = build_context(images, roi_table, retriever, K, "bench", "s00").table.to_pylist()[0]
        docs = [pid.split(":", 1)[1].split("#", 1)[0] for pid in ctx["passage_ids"][:K]]
        hits = sum(d in q["relevant"] for d in docs)
        per_query.append({"query": ctx["query"][:120], "returned": docs, "precision": hits / len(docs) if docs else 0.0,
                          "name": q.get("name") or ",".join(q["image"].get("labels") or [])})
    precisions = [p["precision"] for p in per_query]
    return {"queries": len(per_query), "precision_at_3": round(float(np.mean(precisions)), 4) if precisions else None,
            "misses": [p for p in per_query if p["precision"] < 1.0][:8]}


# ---- the demo set --------------------------------------------------------------------------------


def demo_set(root: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    trip_files = sorted((root / "tables" / "triplets").glob("**/*.parquet"))
    if not trip_files:
        return {"skipped": f"no triplets under {root} (run `medtrinity demo` first)"}
    rows = [r for f in trip_files for r in pq.read_table(f).to_pylist()]
    rois_by_sample: dict[str, list[RoiFacts]] = {}
    for f in sorted((root / "tables" / "rois").glob("**/*.parquet")):
        for r in pq.read_table(f).to_pylist():
            if r.get("status") == "ok":
                rois_by_sample.setdefault(r["sample_id"], []).append(RoiFacts.from_row(r))
    passage_texts: dict[str, str] = {}
    for f in sorted((root / "tables" / "passages").glob("*.parquet")):
        for r in pq.read_table(f, columns=["passage_id", "text"]).to_pylist():
            passage_texts[r["passage_id"]] = r["text"]
    region_of: dict[str, str] = {}
    for f in sorted((root / "tables" / "image_facts").glob("**/*.parquet")):
        for r in pq.read_table(f).to_pylist():
            if r.get("body_region"):
                region_of[r["sample_id"]] = r["body_region"]
    out = score_triplets(rows, rois_by_sample, passage_texts, region_of)
    # the other training targets: VQA answers and LLaVA turns as exported
    exported = Counter()
    for path in list((root / "exports").glob("vqa/*/vqa_pairs.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                exported.update(p.lower() for p in M.pipeline_phrases(json.loads(line).get("answer", "")))
    for path in list((root / "exports").glob("llava/*/*.json")) + list((root / "exports").glob("vqa/*/vqa_llava.json")):
        for rec in json.loads(path.read_text() or "[]"):
            for turn in rec.get("conversations", []):
                if turn.get("from") == "gpt":
                    exported.update(p.lower() for p in M.pipeline_phrases(turn.get("value", "")))
    out["exports_pipeline_phrase_count"] = sum(exported.values())
    out["exports_pipeline_phrases_top"] = dict(exported.most_common(6))
    out["root"] = str(root)
    return out


def main(quick: bool = True, demo_root: str | None = None) -> dict[str, Any]:
    retriever = _retriever()
    phantom = phantom_set(10 if quick else 24, retriever)
    queries = phantom.pop("_queries") + LABELLED_QUERIES
    root = Path(demo_root) if demo_root else REPO / "data" / "out"
    return {"phantom": phantom, "retrieval": passage_precision(queries, retriever), "demo": demo_set(root),
            "targets": {"pipeline_phrase_count": 0, "most_frequent_sentence_share": "<= 0.02", "knowledge_use": ">= 0.8",
                        "precision_at_3": ">= 0.8", "size_error_median": "<= 0.10", "contradiction_rate": 0}}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--demo-root", help="data_root of a finished demo run (default: data/out)")
    args = ap.parse_args()
    print(json.dumps(main(args.quick, args.demo_root), indent=1, default=str))
