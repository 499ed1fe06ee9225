"""Render the dataset card: statistics of what ships, plots, the Hub's YAML front matter and the Markdown.

Statistics are computed from the Hugging Face export (what a user downloads), not from the
intermediate tables. The same text is written to ``exports/hf/README.md`` (the Hub card: front matter
with licence, tasks, size category, ``configs`` naming the split files and ``dataset_info`` features)
and to ``card/README.md``; plots are PNGs under ``plots/`` beside each. Nothing here reads the tables
or decides a check: :mod:`medtrinity_assets.export.dataset_card` gathers the numbers.
matplotlib is imported inside the function (Agg backend) so importing this module is cheap.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from medtrinity_assets.quality.splits import SPLITS

HF_STAT_COLUMNS = ("id", "caption", "modality", "organ", "disease", "labels", "split", "source", "licence",
                   "subject_key", "rois", "generator", "prompt_sha256", "duplicates")
PLOTS_FOLDER = "plots"
# licence ids the Hub knows, by the lower-cased first word of a source's licence text
HUB_LICENCES = frozenset({"apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0",
                          "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nc-nd-4.0", "cc-by-3.0", "odbl", "pddl",
                          "gpl-3.0", "openrail", "unlicense"})
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))
TASK_CATEGORIES = ("image-to-text", "image-segmentation", "object-detection")


@dataclass
class CardStats:
    samples: int = 0
    by_source: Counter = field(default_factory=Counter)
    by_modality: Counter = field(default_factory=Counter)
    by_organ: Counter = field(default_factory=Counter)
    by_disease: Counter = field(default_factory=Counter)
    by_split: Counter = field(default_factory=Counter)
    subjects_by_split: Counter = field(default_factory=Counter)
    roi_origins: Counter = field(default_factory=Counter)
    roi_labels: Counter = field(default_factory=Counter)
    roi_labels_by_split: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    roi_area_fractions: list[float] = field(default_factory=list)
    roi_kinds: list[str] = field(default_factory=list)  # finding | anatomy, parallel to roi_area_fractions
    rois_with_mm: int = 0
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
    subjects: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        st.samples += 1
        split = r.get("split") or "unknown"
        st.by_source[r.get("source") or "unknown"] += 1
        st.by_modality[r.get("modality") or "unknown"] += 1
        st.by_organ[r.get("organ") or "unknown"] += 1
        # an image counts once under each disease/label it carries (a slice often holds several findings)
        diseases = {d.strip() for d in str(r.get("disease") or "").split(",") if d.strip()} | set(r.get("labels") or [])
        for d in sorted(diseases) or ["none given"]:
            st.by_disease[d] += 1
        st.by_split[split] += 1
        if r.get("subject_key"):
            subjects[split].add(str(r["subject_key"]))
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
            st.roi_labels_by_split[roi.get("label") or "unknown"][split] += 1
            if roi.get("diameter_mm") is not None:
                st.rois_with_mm += 1
            if roi.get("area_fraction") is not None:
                st.roi_area_fractions.append(float(roi["area_fraction"]))
                st.roi_kinds.append(roi.get("kind") or "finding")
    st.subjects_by_split = Counter({k: len(v) for k, v in subjects.items()})
    return st


# ---- plots -----------------------------------------------------------------------------------------------


def _bar(ax, counter: Mapping[str, Any], title: str, top: int = 20) -> None:
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    names = [str(k) if len(str(k)) <= 30 else str(k)[:29] + "…" for k, _ in items] or ["(none)"]
    values = [v for _, v in items] or [0]
    pos = list(range(len(names)))[::-1]  # positions, not names: two truncated names never merge
    ax.barh(pos, values, color="#4878a8")
    ax.set_yticks(pos, names)
    ax.set_title(title)


def write_plots(stats: CardStats, contradiction_by_source: Mapping[str, float], vqa_types: Mapping[str, Any],
                folder: Path) -> dict[str, Path]:
    """PNG plots under ``folder``; returns name -> path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

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
    fig, ax = plt.subplots(figsize=(6, 4))
    _bar(ax, {t: v.get("n", 0) for t, v in vqa_types.items()}, "VQA pairs by question type", top=30)
    ax.set_xlabel("question-answer pairs")
    save(fig, "vqa_question_types")
    return out


# ---- front matter ----------------------------------------------------------------------------------------


def hub_licence(text: str) -> str:
    """'MIT (pydicom test data)' -> 'mit'; a licence the Hub does not list -> 'other'."""
    word = re.split(r"[\s(;,]", str(text or "").strip(), maxsplit=1)[0].lower()
    return word if word in HUB_LICENCES else "other"


def dataset_licence(sources: list[Mapping[str, Any]]) -> str:
    """The one Hub licence id all sources share, else ``other`` (the card then lists each source's)."""
    licences = {hub_licence(s.get("licence", "")) for s in sources}
    return licences.pop() if len(licences) == 1 else "other"


def size_category(n: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if n < limit), "n>1T")


def front_matter(sources: list[Mapping[str, Any]], splits: Mapping[str, Mapping[str, int]],
                 features: list[dict[str, Any]], title: str, n: int) -> dict[str, Any]:
    """The Hub metadata: licence (``other`` with the per-source table when they differ), tasks, size,
    ``configs`` with one glob per split present, and ``dataset_info`` (features, split sizes)."""
    meta: dict[str, Any] = {"pretty_name": title, "license": dataset_licence(sources)}
    if meta["license"] == "other":
        meta["license_name"] = "per-source"
        meta["license_link"] = "LICENSE.md"
    present = [s for s in SPLITS if splits.get(s, {}).get("rows")]
    meta.update({
        "language": ["en"],
        "task_categories": list(TASK_CATEGORIES),
        "tags": ["medical", "radiology", "image-captioning", "segmentation", "grounded-descriptions"],
        "size_categories": [size_category(n)],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f"data/{s}-*.parquet"} for s in present]}],
        "dataset_info": {
            "features": features,
            "splits": [{"name": s, "num_bytes": int(splits[s]["bytes"]), "num_examples": int(splits[s]["rows"])}
                       for s in present],
            "download_size": int(sum(splits[s]["file_bytes"] for s in present)),
            "dataset_size": int(sum(splits[s]["bytes"] for s in present)),
        },
    })
    return meta


# ---- Markdown --------------------------------------------------------------------------------------------


def _table(counter: Mapping[str, Any], header: str, total: int | None = None) -> str:
    lines = [f"| {header} | count |" + (" share |" if total else ""), "|---|---:|" + ("---:|" if total else "")]
    for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        share = f" {100 * v / total:.1f}% |" if total else ""
        lines.append(f"| {k} | {v} |{share}")
    return "\n".join(lines)


def _cell(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


@dataclass
class CardInputs:
    """Everything the card states, gathered by ``dataset_card``."""

    stats: CardStats
    sources: list[dict[str, Any]]  # name, format, licence, roi, citation
    categories: list[dict[str, Any]]  # id, name, kind (the dataset's category map)
    hf_splits: dict[str, dict[str, int]]  # split -> rows, bytes, file_bytes
    features: list[dict[str, Any]]  # dataset_info.features
    column_docs: dict[str, str]
    quality: dict[str, str]  # check -> result sentence
    contradiction_by_source: dict[str, float]
    exports: dict[str, dict[str, Any]]  # format -> folder, files, samples per split, images linked
    vqa: dict[str, Any]  # vqa.summarise of every split
    limitations: list[str]
    plots: dict[str, str] = field(default_factory=dict)  # plot name -> path relative to the card
    title: str = "MedTrinity-style image-ROI-description dataset"
    organ_coverage: dict[str, dict[str, float]] = field(default_factory=dict)  # modality -> roi.image_facts.coverage_by_modality


def _plot(inputs: CardInputs, name: str, alt: str) -> str:
    return f"\n![{alt}]({inputs.plots[name]})" if name in inputs.plots else ""


def render_card(inputs: CardInputs) -> str:
    """Markdown with the Hub's YAML front matter."""
    st = inputs.stats
    n = st.samples
    meta = front_matter(inputs.sources, inputs.hf_splits, inputs.features, inputs.title, n)
    parts = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000).rstrip(), "---", "",
             f"# {inputs.title}", "",
             f"{n} image–ROI–description triplets from {len(inputs.sources)} sources "
             f"({sum(st.subjects_by_split.values())} subjects), with {sum(st.roi_origins.values())} regions of "
             "interest. Every description was checked against its structured facts; images matching "
             "evaluation-set hashes were excluded; near-duplicates appear once with the provenance of every copy; "
             "splits are by subject, so no patient appears in two splits in any export.", "",
             "## Loading", "", "```python", "from datasets import load_dataset",
             "ds = load_dataset(\"path/to/exports/hf\")  # or the Hub repository this folder was pushed to",
             "ds[\"train\"][0][\"image\"]  # a PIL image; ds[\"train\"][0][\"rois\"] its regions", "```", "",
             "The other formats sit beside this folder in `exports/`:", "",
             "| format | files | how to use |", "|---|---|---|",
             "| LLaVA | `llava/{train,validation,test}.json`, `llava/images/` | "
             "`--data_path exports/llava/train.json --image_folder exports/llava` |",
             "| VQA | `vqa/{split}.jsonl` (one question per line), `vqa/{split}_llava.json`, `vqa/images/` | "
             "LLaVA question file / instruction data; score with `python -m medtrinity_assets.export.vqa_eval` |",
             "| COCO | `coco/annotations_{split}.json`, `coco/images/` | `pycocotools.coco.COCO(...)`; ids unique "
             "across the split files, one category map |",
             "| WebDataset | `webdataset/{split}-<shard>-<n>.tar` | `webdataset.WebDataset(glob('exports/webdataset/train-*.tar'))` |",
             "", "Every record of every format carries its `split`. Image paths resolve from the folder of the "
             "file that names them. Each format folder holds a `SHA256SUMS` (`sha256sum -c SHA256SUMS`).", ""]
    parts += ["## Columns", "", "| column | type | meaning |", "|---|---|---|"]
    types = {f["name"]: f.get("dtype") or ("list" if "list" in f else "struct") for f in inputs.features}
    for col, doc in inputs.column_docs.items():
        parts.append(f"| `{col}` | {types.get(col, '')} | {_cell(doc)} |")
    parts += ["", "## Conventions", "",
              "- **Boxes.** In this Parquet export and in the WebDataset JSON, `rois[].bbox` is **normalised** "
              "`[x0, y0, x1, y1]`: fractions (0–1) of the image width and height, origin at the top-left corner, "
              "x along columns, y down the rows. In the COCO files `bbox` is in **pixels**, `[x, y, width, height]` "
              "(COCO's own convention). Centroids are normalised `[x, y]`.",
              "- **Masks.** `rois[].mask_rle` (and COCO `segmentation`) is COCO **compressed RLE**: "
              "`{\"size\": [height, width], \"counts\": \"...\"}`, column-major as `pycocotools` writes it. Decode with "
              "`pycocotools.mask.decode({\"size\": m[\"size\"], \"counts\": m[\"counts\"].encode()})`. A ROI that came "
              "as a box only (COCO-box sources) has no mask here and a 4-point polygon in COCO.",
              "- **Sides.** `side` is the patient's side (left/right), not the image's: images are shown in the "
              "radiological convention, so the patient's left is on the image's right.",
              "- **Units.** `area_mm2` and `diameter_mm` (the diameter of a circle of the same area) are in "
              "millimetres and null when the pixel spacing is unknown; relation distances say their unit "
              "(`distance_unit`: mm or px).",
              "- **Origins.** `origin` is `ground_truth` (an annotation shipped with the source) or "
              "`expert:<model>@<version>` (a model's output, with its `confidence`).",
              "- **Images.** 8-bit PNG, greyscale with a modality window (CT), a percentile window (MR and others) "
              "or RGB as acquired; never upscaled.", ""]
    parts += ["## Sources and licences", "",
              f"Licence: `{meta['license']}`" + (" — the sources' licences differ; each image's `licence` column "
                                                  "names its own, as below." if meta["license"] == "other" else "."),
              "", "| source | format | licence | ROIs | exported images | citation |", "|---|---|---|---|---:|---|"]
    for s in inputs.sources:
        parts.append(f"| {_cell(s['name'])} | {_cell(s.get('format'))} | {_cell(s.get('licence'))} | "
                     f"{_cell(s.get('roi'))} | {st.by_source.get(s['name'], 0)} | {_cell(s.get('citation') or '—')} |")
    parts += ["", "## Contents", "", "Counts are images; an image counts under every disease/label it carries.", "",
              "### By split", "| split | images | share | subjects |", "|---|---:|---:|---:|"]
    for split in SPLITS:
        c = st.by_split.get(split, 0)
        parts.append(f"| {split} | {c} | {100 * c / n if n else 0:.1f}% | {st.subjects_by_split.get(split, 0)} |")
    parts += ["", "### By modality", _table(st.by_modality, "modality", n), _plot(inputs, "by_modality", "modality"),
              "", "### By organ", _table(st.by_organ, "organ", n), _plot(inputs, "by_organ", "organ"),
              "", "### By disease / label", _table(st.by_disease, "disease", n), _plot(inputs, "by_disease", "disease"),
              "", "## Categories (the label vocabulary)", "",
              "One category map for the whole dataset (`exports/categories.json`): ids are given when a label is first "
              "exported and never change, so COCO files of every split and release merge without remapping. Labels "
              "are the sources' own ground-truth names and the expert models' labels; `kind` says whether a region is "
              "reference anatomy or a finding.", "",
              "| id | label | kind | " + " | ".join(f"{s} ROIs" for s in SPLITS) + " |",
              "|---:|---|---|" + "---:|" * len(SPLITS)]
    for c in inputs.categories:
        per = st.roi_labels_by_split.get(c["name"], Counter())
        parts.append(f"| {c['id']} | {_cell(c['name'])} | {c['kind']} | " + " | ".join(str(per.get(s, 0)) for s in SPLITS) + " |")
    parts += ["", "## Regions of interest", "Where every mask came from (ground truth, or an expert model with its version):",
              "", _table(st.roi_origins, "origin"), "",
              f"{st.rois_with_mm} of {sum(st.roi_origins.values())} regions have sizes in millimetres (known pixel spacing).",
              _plot(inputs, "roi_size", "ROI size")]
    if inputs.organ_coverage:
        parts += ["", "### Organ coverage by modality",
                  "Share of the exported images with at least one organ region (ground truth or an expert model) "
                  "and with a named body region, as the ROI stage's per-image facts give them.", "",
                  "| modality | images | with ≥1 organ | share | with body region | share |",
                  "|---|---:|---:|---:|---:|---:|"]
        for mod, c in inputs.organ_coverage.items():
            parts.append(f"| {_cell(mod)} | {c['images']} | {c['with_organ']} | {100 * c['organ_coverage']:.1f}% | "
                         f"{c['with_region']} | {100 * c['region_coverage']:.1f}% |")
    parts += ["", "## Descriptions and generators", "", _table(st.generators, "backend / model @ version"), "",
              _table(st.prompt_hashes, "prompt template sha256 (prefix)"),
              _plot(inputs, "description_length", "description length")]
    if st.description_words:
        words = sorted(st.description_words)
        parts.append(f"\nDescription length: median {words[len(words) // 2]} words, range {words[0]}–{words[-1]}.")
    v = inputs.vqa
    if v:
        parts += ["", "## Visual question answering", "",
                  f"{v['pairs']} question–answer pairs on {v['images']} images: {v['distinct_questions']} distinct "
                  f"questions, {v['distinct_answers']} distinct answers. Answers come from the facts only; yes/no answers "
                  "are balanced within every question type and split; short-answer and multiple-choice prompts carry "
                  "LLaVA-1.5's answer-format instruction.", "",
                  "| question type | pairs | share of yes among yes/no |", "|---|---:|---:|"]
        for t, info in v["question_types"].items():
            share = f"{100 * info['yes_share']:.1f}%" if "yes_share" in info else "—"
            parts.append(f"| {t} | {info['n']} | {share} |")
        parts.append(_plot(inputs, "vqa_question_types", "VQA question types"))
    parts += ["", "## Quality checks", "", "| check | result |", "|---|---|"]
    for k, val in inputs.quality.items():
        parts.append(f"| {k} | {_cell(val)} |")
    parts += ["", "### Contradiction rate per source",
              "Share of triplets whose description or attributes contradict their facts "
              "(modality, organ, side, size, ROI count, intensity, or absent organs/findings):", "",
              "| source | rate |", "|---|---:|"]
    for k, rate in sorted(inputs.contradiction_by_source.items()):
        parts.append(f"| {k} | {100 * rate:.2f}% |")
    parts.append(_plot(inputs, "contradiction_rate", "contradiction rate"))
    parts += ["", "## Files", "", "| format | folder | " + " | ".join(SPLITS) + " | images stored |",
              "|---|---|" + "---:|" * len(SPLITS) + "---|"]
    for fmt, info in inputs.exports.items():
        per = info.get("samples", {})
        parts.append(f"| {fmt} | `{info.get('folder', '')}` | " + " | ".join(str(per.get(s, 0)) for s in SPLITS)
                     + f" | {info.get('images', '')} |")
    parts += ["", "## Limitations", ""]
    parts += [f"- {line}" for line in inputs.limitations]
    parts.append("")
    return "\n".join(parts)
