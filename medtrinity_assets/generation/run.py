"""One partition's triplets: facts -> requests -> backend -> rows, with the counts the asset reports.

Requests go to the backend in chunks (bounded memory for image bytes); every sample yields exactly
one row, ok or failed with its reason, and the caller writes the whole table at once (atomic), so a
crash never leaves half a shard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from medtrinity_assets.generation.backends import Backend, generator_id, generator_identity
from medtrinity_assets.generation.coarse_caption import coarse_caption
from medtrinity_assets.generation.prompt import PromptTemplate, build_request
from medtrinity_assets.generation.results import GenerationResult, PromptRequest, failed
from medtrinity_assets.generation.sample_facts import SampleFacts, image_laterality
from medtrinity_assets.storage import rows_to_table
from medtrinity_assets.tables import TRIPLET_SCHEMA


@dataclass
class RunStats:
    samples: int = 0
    ok: int = 0
    failed: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: list[float] = field(default_factory=list)
    seconds: float = 0.0
    failure_reasons: dict[str, int] = field(default_factory=dict)

    def add(self, r: GenerationResult) -> None:
        self.samples += 1
        if r.ok:
            self.ok += 1
        else:
            self.failed += 1
            key = r.reason.split(":")[0][:60]
            self.failure_reasons[key] = self.failure_reasons.get(key, 0) + 1
        self.cached += int(r.cached)
        self.prompt_tokens += r.prompt_tokens
        self.completion_tokens += r.completion_tokens
        if r.latency_s:
            self.latency_s.append(r.latency_s)

    def latency_summary(self) -> dict[str, float]:
        if not self.latency_s:
            return {}
        xs = sorted(self.latency_s)
        return {"mean_s": round(sum(xs) / len(xs), 4), "p50_s": round(xs[len(xs) // 2], 4), "p95_s": round(xs[int(0.95 * (len(xs) - 1))], 4)}


def triplet_row(
    facts: SampleFacts,
    image_row: Mapping[str, Any],
    result: GenerationResult,
    identity: dict[str, str],
    gen_id: str,
    prompt_sha256: str,
    shard: str,
) -> dict[str, Any]:
    cap = coarse_caption(facts.image)
    ok = result.ok
    return {
        "sample_id": facts.sample_id,
        "source": facts.image.source,
        "image_path": facts.image.image_path,
        "image_sha256": facts.image.image_sha256,
        "roi_ids": [r.roi_id for r in facts.rois],
        "rois_json": json.dumps([r.compact() for r in facts.rois], sort_keys=True),
        "coarse_caption": cap.sentence,
        "coarse_json": json.dumps(cap.fields(), sort_keys=True),
        "passages": [{"passage_id": p.passage_id, "corpus": p.corpus, "score": float(p.score)} for p in facts.passages],
        "description": result.description if ok else None,
        "attributes": {k: result.attributes.get(k, "") for k in ("modality", "organ", "roi_location", "texture", "relations")} if ok else None,
        "clauses_json": json.dumps(result.clauses) if ok else None,
        "generator": identity,
        "generator_id": gen_id,
        "prompt_sha256": prompt_sha256,
        "status": result.status,
        "failure_reason": None if ok else result.reason,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "latency_s": float(result.latency_s),
        "cached": bool(result.cached),
        "modality": facts.image.modality,
        "organ": facts.image.organ,
        "disease": facts.image.disease,
        "labels": list(facts.image.labels),
        "body_region": facts.image.body_region_detail or facts.image.body_region,
        "body_region_origin": facts.image.body_region_origin,
        "agrees_with_metadata": facts.image.agrees_with_metadata,
        "laterality": image_laterality(facts.image),
        "provenance": {
            "source": facts.image.source,
            "volume_ref": str(image_row.get("volume_ref") or ""),
            "slice_index": int(image_row["slice_index"]) if image_row.get("slice_index") is not None else -1,
            "original_label": [str(x) for x in (image_row.get("labels") or [])],
            "licence": str(image_row.get("licence") or ""),
            "split": str(image_row.get("split") or ""),
        },
        "shard": shard,
    }


def generate_rows(
    samples: list[tuple[SampleFacts, Mapping[str, Any]]],
    backend: Backend,
    template: PromptTemplate,
    read_image: Callable[[str], bytes],
    shard: str,
    chunk_size: int = 256,
    top_k: int = 3,
) -> tuple[pa.Table, RunStats, str]:
    """Triplet table of one partition, its stats, and the generator id."""
    identity = generator_identity(backend)
    gen_id = generator_id(backend, template.sha256)
    stats = RunStats()
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for start in range(0, len(samples), chunk_size):
        chunk = samples[start : start + chunk_size]
        requests, pre_failed = [], {}
        for facts, _row in chunk:
            image = None
            if backend.needs_image:
                try:
                    image = read_image(facts.image.image_path)
                except (FileNotFoundError, OSError) as exc:
                    pre_failed[facts.sample_id] = failed(facts.sample_id, f"image unreadable ({facts.image.image_path}): {exc}; rematerialise images")
                    continue
            if getattr(backend, "needs_prompt", True):
                requests.append(build_request(facts, template, image_png=image, max_passages=top_k))
            else:  # the grounded composer reads the facts directly; rendering the text would be wasted work
                requests.append(PromptRequest(facts.sample_id, facts, "", "", template.sha256, "", None, None, facts.image.image_sha256))
        results = {r.sample_id: r for r in backend.generate(requests)} if requests else {}
        results.update(pre_failed)
        for facts, row in chunk:
            res = results.get(facts.sample_id) or failed(facts.sample_id, "backend returned no result for this sample")
            stats.add(res)
            rows.append(triplet_row(facts, row, res, identity, gen_id, template.sha256, shard))
    stats.seconds = time.perf_counter() - t0
    return rows_to_table(rows, TRIPLET_SCHEMA), stats, gen_id
