"""The dataset card: what the exported dataset holds, where it came from, and how it was checked.

Statistics are computed from the Hugging Face export (what ships), so the card describes the
dataset a user downloads, not the intermediate tables. Plots are PNGs beside ``README.md`` in the card
folder; matplotlib is imported inside the function (Agg backend) so importing this module is cheap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from medtrinity_assets.storage import atomic_write_text

HF_STAT_COLUMNS = ("id", "caption", "modality", "organ", "disease", "labels", "split", "source", "licence",
                   "rois", "generator", "prompt_sha256", "duplicates")


@dataclass
class CardStats:
    samples: int = 0
    by_source: Counter = field(default_factory=Counter)
    by_modality: Counter = field(default_factory=Counter)
    by_organ: Counter = field(default_factory=Counter)
    by_disease: Counter = field(default_factory=Counter)
    by_split: Counter = field(default_factory=Counter)
    roi_origins: Counter = field(default_factory=Counter)
    roi_labels: Counter = field(default_factory=Counter)
    roi_area_fractions: list[float] = field(default_factory=list)
    roi_kinds: list[str] = field(default_factory=list)  # finding | anatomy, parallel to roi_area_fractions
    description_words: list[int] = field(default_factory=list)
    generators: Counter = field(default_factory=Counter)
    prompt_hashes: Counter = field(default_factory=Counter)
    samples_with_duplicates: int = 0


def read_hf_rows(files: Iterable[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for f in sorted(files):
        pf = pq.ParquetFile(f)
        cols = [c for c in HF_STAT_COLUMNS if c in pf.schema_arrow.names]
        rows += pf.read(columns=cols).to_pylist()
    return rows


def collect_stats(rows: Iterable[Mapping[str, Any]]) -> CardStats:
    st = CardStats()
    for r in rows:
        st.samples += 1
        st.by_source[r.get("source") or "unknown"] += 1
        st.by_modality[r.get("modality") or "unknown"] += 1
        st.by_organ[r.get("organ") or "unknown"] += 1
        # an image counts once under each disease/label it carries (a slice often holds several findings)
        diseases = {d.strip() for d in str(r.get("disease") or "").split(",") if d.strip()} | set(r.get("labels") or [])
        for d in sorted(diseases) or ["none given"]:
            st.by_disease[d] += 1
        st.by_split[r.get("split") or "unknown"] += 1
        st.description_words.append(len(str(r.get("caption") or "").split()))
        gen = r.get("generator") or {}
        st.generators[f"{gen.get('backend', '')} / {gen.get('model', '')} @ {gen.get('version', '')}"] += 1
        if r.get("prompt_sha256"):
            st.prompt_hashes[str(r["prompt_sha256"])[:12]] += 1
        if r.get("duplicates"):
            st.samples_with_duplicates += 1
        for roi in r.get("rois") or []:
            st.roi_origins[roi.get("origin") or "unknown"] += 1
            st.roi_labels[roi.get("label") or "unknown"] += 1
            if roi.get("area_fraction") is not None:
                st.roi_area_fractions.append(float(roi["area_fraction"]))
                st.roi_kinds.append(roi.get("kind") or "finding")
    return st


def _bar(ax, counter: Mapping[str, Any], title: str, top: int = 20) -> None:
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    names = [str(k) if len(str(k)) <= 30 else str(k)[:29] + "…" for k, _ in items] or ["(none)"]
    values = [v for _, v in items] or [0]
    pos = list(range(len(names)))[::-1]  # positions, not names: two truncated names never merge
    ax.barh(pos, values, color="#4878a8")
    ax.set_yticks(pos, names)
    ax.set_title(title)


def write_plots(stats: CardStats, contradiction_by_source: Mapping[str, float], folder: Path) -> dict[str, Path]:
    """PNG plots under ``folder``; returns name -> path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    def save(fig, name: str) -> None:
        path = folder / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=90, metadata={"Software": None})
        plt.close(fig)
        out[name] = path

    for name, counter, title in (
        ("modality", stats.by_modality, "Images by modality"),
        ("organ", stats.by_organ, "Images by organ"),
        ("disease", stats.by_disease, "Images by disease / label"),
    ):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        _bar(ax, counter, title)
        ax.set_xlabel("images")
        save(fig, f"by_{name}")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    import numpy as np

    bins = np.logspace(-3, 2, 26)  # 0.001 % .. 100 % of the image, log-spaced: lesions and organs both visible
    for kind, colour in (("finding", "#c0504d"), ("anatomy", "#6a9a58")):
        vals = [max(100 * a, 1e-3) for a, k in zip(stats.roi_area_fractions, stats.roi_kinds) if k == kind]
        if vals:
            ax.hist(vals, bins=bins, color=colour, alpha=0.7, label=f"{kind} ({len(vals)})")
    ax.set_xscale("log")
    ax.set_title("ROI size")
    ax.set_xlabel("area, % of the image (log scale)")
    ax.set_ylabel("ROIs")
    if stats.roi_area_fractions:
        ax.legend()
    save(fig, "roi_size")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(stats.description_words or [0], bins=30, color="#b07040")
    ax.set_title("Description length")
    ax.set_xlabel("words")
    ax.set_ylabel("descriptions")
    save(fig, "description_length")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    _bar(ax, {k: 100 * v for k, v in contradiction_by_source.items()}, "Contradiction rate per source (%)")
    ax.set_xlabel("% of triplets with an issue")
    save(fig, "contradiction_rate")
    return out


def _table(counter: Mapping[str, Any], header: str, total: int | None = None) -> str:
    lines = [f"| {header} | count |" + (" share |" if total else ""), "|---|---:|" + ("---:|" if total else "")]
    for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        share = f" {100 * v / total:.1f}% |" if total else ""
        lines.append(f"| {k} | {v} |{share}")
    return "\n".join(lines)


def render_card(
    stats: CardStats,
    sources: list[Mapping[str, Any]],
    quality: Mapping[str, Any],
    contradiction_by_source: Mapping[str, float],
    exports: Mapping[str, Mapping[str, Any]],
    plots: Mapping[str, str],
    title: str = "MedTrinity-style image–ROI–description dataset",
) -> str:
    """Markdown card; ``plots`` maps plot name -> path relative to the card."""
    n = stats.samples
    parts = [
        f"# {title}",
        "",
        f"{n} image–ROI–description triplets from {len(sources)} sources, with "
        f"{sum(stats.roi_origins.values())} ROIs. Every description was checked against its structured facts; "
        "images matching evaluation-set hashes were excluded; near-duplicates appear once with the provenance of "
        "every copy; splits are by subject.",
        "",
        "## Sources and licences",
        "| source | format | licence | ROIs | exported images |",
        "|---|---|---|---|---:|",
    ]
    for s in sources:
        parts.append(f"| {s['name']} | {s.get('format', '')} | {s.get('licence', '')} | {s.get('roi', '')} | "
                     f"{stats.by_source.get(s['name'], 0)} |")
    parts += ["", "## Contents", "", "Counts are images; an image counts under every disease/label it carries.", "",
              "### By split", _table(stats.by_split, "split", n),
              "", "### By modality", _table(stats.by_modality, "modality", n),
              f"\n![modality]({plots.get('by_modality', '')})",
              "", "### By organ", _table(stats.by_organ, "organ", n), f"\n![organ]({plots.get('by_organ', '')})",
              "", "### By disease / label", _table(stats.by_disease, "disease", n),
              f"\n![disease]({plots.get('by_disease', '')})",
              "", "## Regions of interest",
              "Where every mask came from (ground truth, or an expert model with its version):", "",
              _table(stats.roi_origins, "origin"), "", _table(stats.roi_labels, "ROI label"),
              f"\n![ROI size]({plots.get('roi_size', '')})",
              "", "## Descriptions and generators", "", _table(stats.generators, "backend / model @ version"), "",
              _table(stats.prompt_hashes, "prompt template sha256 (prefix)"),
              f"\n![description length]({plots.get('description_length', '')})"]
    if stats.description_words:
        words = sorted(stats.description_words)
        parts.append(f"\nDescription length: median {words[len(words) // 2]} words, "
                     f"range {words[0]}–{words[-1]}.")
    parts += ["", "## Quality checks", "", "| check | result |", "|---|---|"]
    for k, v in quality.items():
        parts.append(f"| {k} | {v} |")
    parts += ["", "### Contradiction rate per source",
              "Share of triplets whose description or attributes contradict their facts "
              "(modality, organ, side, size, ROI count, intensity, or absent organs/findings):", "",
              "| source | rate |", "|---|---:|"]
    for k, v in sorted(contradiction_by_source.items()):
        parts.append(f"| {k} | {100 * v:.2f}% |")
    parts.append(f"\n![contradiction rate]({plots.get('contradiction_rate', '')})")
    parts += ["", "## Exports", "", "| format | folder | shards | files | samples |", "|---|---|---:|---:|---:|"]
    for fmt, info in exports.items():
        parts.append(f"| {fmt} | `{info.get('folder', '')}` | {info.get('shards', 0)} | {info.get('files', 0)} | "
                     f"{info.get('samples', '')} |")
    parts += ["", "Each export folder and each shard folder holds a `SHA256SUMS` file (`sha256sum -c SHA256SUMS`).",
              "", "Load the Hugging Face export with:", "", "```python",
              "from datasets import load_dataset",
              "ds = load_dataset('parquet', data_files={'train': 'exports/hf/*/train.parquet',",
              "                                         'validation': 'exports/hf/*/validation.parquet',",
              "                                         'test': 'exports/hf/*/test.parquet'})",
              "```", ""]
    return "\n".join(parts)


def write_card(folder: Path, markdown: str) -> Path:
    path = Path(folder) / "README.md"
    atomic_write_text(path, markdown)
    return path
