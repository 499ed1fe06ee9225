"""Prompt builder: the paper's structure (image + ROI overlay, coarse caption, ROI facts, knowledge) in one template.

The template and its answer schema live in ``prompts/<name>.txt`` / ``prompts/<name>.schema.json``;
their joint sha256 (``prompt_sha256``) is the prompt's version and is stored on every triplet. The
ROI-overlay view is rendered in memory for the request and never written into the dataset.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from string import Template

from medtrinity_assets.generation.coarse_caption import coarse_caption
from medtrinity_assets.generation.results import PromptRequest
from medtrinity_assets.generation.sample_facts import SampleFacts
from medtrinity_assets.roi.facts import Relation, RoiFacts
from medtrinity_assets.vocabulary import MARGIN_WORDS, humanise

PROMPTS_DIR = Path(__file__).parent / "prompts"
DEFAULT_PROMPT = "description_v2"


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    system: str
    user: str
    schema: dict
    sha256: str

    @property
    def schema_text(self) -> str:
        return json.dumps(self.schema, separators=(",", ":"))


@functools.lru_cache(maxsize=8)
def load_template(name: str = DEFAULT_PROMPT) -> PromptTemplate:
    """Read ``prompts/<name>.txt`` and its schema; '#' lines are comments, '=== system/user ===' split sections."""
    txt_path = PROMPTS_DIR / f"{name}.txt"
    schema_path = PROMPTS_DIR / f"{name}.schema.json"
    if not txt_path.is_file() or not schema_path.is_file():
        known = sorted(p.stem for p in PROMPTS_DIR.glob("*.txt"))
        raise FileNotFoundError(f"prompt template {name!r}: need {txt_path.name} and {schema_path.name} in {PROMPTS_DIR}; known: {known}")
    raw = txt_path.read_bytes()
    schema_raw = schema_path.read_bytes()
    sections: dict[str, list[str]] = {}
    current = None
    for line in raw.decode("utf-8").splitlines():
        if line.startswith("#"):
            continue
        stripped = line.strip()
        if stripped.startswith("===") and stripped.endswith("==="):
            current = stripped.strip("= ").lower()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    if "system" not in sections or "user" not in sections:
        raise ValueError(f"{txt_path}: needs '=== system ===' and '=== user ===' sections")
    sha = hashlib.sha256(raw + b"\0" + schema_raw).hexdigest()
    return PromptTemplate(
        name=name,
        system="\n".join(sections["system"]).strip(),
        user="\n".join(sections["user"]).strip(),
        schema=json.loads(schema_raw),
        sha256=sha,
    )


def _fmt_pct(area_fraction: float | None) -> str:
    if area_fraction is None:
        return ""
    pct = 100.0 * area_fraction
    return f"{pct:.2f}%" if pct < 1 else f"{pct:.1f}%"


def roi_fact_line(index: int, roi: RoiFacts) -> str:
    """One ROI as a line of labelled facts; unknown facts are left out (never 'unknown left')."""
    parts = [f"[{index}] {humanise(roi.label) or 'region'} ({roi.kind}, origin {roi.origin})"]
    if roi.bbox:
        x0, y0, x1, y1 = roi.bbox
        parts.append(f"box x0={x0:.3f} y0={y0:.3f} x1={x1:.3f} y1={y1:.3f} (fractions of width/height)")
    if roi.side in ("left", "right", "midline"):
        parts.append(f"patient side: {roi.side}")
    pos = ", ".join(p for p in (roi.vertical_position, roi.ap_position) if p and p != "unknown")
    if pos:
        parts.append(f"position: {pos}")
    if roi.region:
        parts.append(f"region: {humanise(roi.region)}")
    axes = f"{roi.long_axis_mm:.1f} x {roi.short_axis_mm:.1f} mm (long x short axis)" if roi.long_axis_mm and roi.short_axis_mm else ""
    size = ", ".join(p for p in (axes, humanise(roi.size_class), _fmt_pct(roi.area_fraction) and f"{_fmt_pct(roi.area_fraction)} of the image") if p)
    if size:
        parts.append(f"size: {size}")
    if roi.attenuation and roi.mean_value is not None:
        parts.append(f"attenuation: {humanise(roi.attenuation)} (mean {roi.mean_value:.0f} HU"
                     + (f", surroundings {roi.surround_value:.0f} HU)" if roi.surround_value is not None else ")"))
    if roi.intensity:
        if roi.contrast_unit == "HU" and roi.contrast is not None:
            contrast = f" ({roi.contrast:+.0f} HU vs surroundings)"
        elif roi.contrast is not None:
            contrast = f" (contrast-to-noise ratio {roi.contrast:+.1f} vs surroundings; no absolute unit)"
        else:
            contrast = ""
        parts.append(f"intensity: {roi.intensity}{contrast}")
    for name, value in (("texture", roi.texture), ("shape", roi.shape), ("margin", MARGIN_WORDS.get(roi.margin, roi.margin))):
        if value:
            parts.append(f"{name}: {value}")
    rels = [relation_phrase(rel) for rel in roi.relations.statements()]
    rels = [r for r in rels if r]
    if rels:
        parts.append("relations: " + "; ".join(rels))
    return "- " + "; ".join(parts)


def image_fact_lines(facts: SampleFacts) -> str:
    """What the image itself shows and how it was acquired, one fact per line (only known facts)."""
    img = facts.image
    lines = []
    if img.body_region:
        lines.append(f"- body region shown: {img.body_region_detail or img.body_region}")
    if img.visible_organs:
        lines.append(f"- organs on this image: {', '.join(img.visible_organs)}")
    if img.pixel_spacing and img.width and img.height:
        lines.append(f"- pixel spacing {img.pixel_spacing[0]:.3g} x {img.pixel_spacing[1]:.3g} mm; field of view "
                     f"{img.width * img.pixel_spacing[1]:.0f} x {img.height * img.pixel_spacing[0]:.0f} mm")
    for key, value in img.acquisition:
        lines.append(f"- {key}: {value}")
    for key, value in img.measurements:
        lines.append(f"- {humanise(key)}: {value}")
    findings = [humanise(x) for x in (img.disease, *img.labels) if x]
    if findings:
        lines.append(f"- findings named for this {'image' if img.slice_index < 0 else 'volume (not all on this slice)'}: {', '.join(findings)}")
    if img.caption_in:
        lines.append(f"- text supplied with the image (may be used where the facts agree): {' '.join(img.caption_in.split())}")
    return "\n".join(lines) or "- (no further facts)"


def relation_phrase(rel: Relation) -> str:
    target = humanise(rel.target)
    if not target:
        return ""
    tail = f" ({rel.distance_mm:.0f} mm)" if rel.distance_mm is not None and rel.type not in ("inside", "overlaps") else ""
    return f"{rel.type} {target}{tail}"


def render_overlay(image_png: bytes, rois: tuple[RoiFacts, ...]) -> bytes:
    """The image with each ROI's box and index drawn, as PNG bytes in memory (for the model only)."""
    from PIL import Image, ImageDraw

    with Image.open(io.BytesIO(image_png)) as im:
        canvas = im.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    w, h = canvas.size
    colours = [(255, 64, 64), (64, 200, 255), (255, 210, 0), (120, 255, 120), (255, 120, 255)]
    for i, roi in enumerate(rois, start=1):
        if not roi.bbox:
            continue
        x0, y0, x1, y1 = roi.bbox
        box = [x0 * (w - 1), y0 * (h - 1), max(x1 * (w - 1), x0 * (w - 1) + 1), max(y1 * (h - 1), y0 * (h - 1) + 1)]
        colour = colours[(i - 1) % len(colours)]
        draw.rectangle(box, outline=colour, width=max(1, min(w, h) // 128))
        draw.text((box[0] + 2, max(0, box[1] - 11)), str(i), fill=colour)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def build_request(
    facts: SampleFacts,
    template: PromptTemplate | None = None,
    image_png: bytes | None = None,
    max_rois: int = 8,
    max_passages: int = 3,
    passage_chars: int = 700,
) -> PromptRequest:
    """Render the prompt for one sample (text + image + overlay)."""
    template = template or load_template()
    cap = coarse_caption(facts.image)
    # findings first, then anatomy references, each by size: what a reader looks at first
    rois = sorted(facts.findings, key=lambda r: -(r.area_fraction or 0.0)) + sorted(facts.anatomy, key=lambda r: -(r.area_fraction or 0.0))
    rois = tuple(rois[:max_rois])
    roi_lines = "\n".join(roi_fact_line(i, r) for i, r in enumerate(rois, start=1)) or "- none (describe the whole image)"
    if len(facts.rois) > len(rois):
        roi_lines += f"\n- ({len(facts.rois) - len(rois)} smaller ROIs not listed)"
    passages = facts.passages[:max_passages]
    passage_lines = "\n".join(
        f"[{i}] ({p.corpus or 'corpus'} #{p.passage_id}, score {p.score:.2f}) {p.title + ': ' if p.title else ''}{' '.join(p.text.split())[:passage_chars]}"
        for i, p in enumerate(passages, start=1)
    ) or "(none retrieved)"
    image_note = ("attached (first image: as acquired; second image: the findings boxed and numbered as listed below)"
                  if image_png else "not attached (describe from the facts)")
    user = Template(template.user).safe_substitute(
        coarse_caption=cap.sentence,
        image_facts=image_fact_lines(facts),
        source_caption=" ".join(facts.image.caption_in.split()) or "(none)",
        image_note=image_note,
        roi_count=str(len(rois)),
        roi_facts=roi_lines,
        passage_count=str(len(passages)),
        passages=passage_lines,
        answer_schema=template.schema_text,
    )
    overlay = render_overlay(image_png, rois) if image_png and rois else None
    h = hashlib.sha256()
    for part in (template.sha256, template.system, user):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return PromptRequest(
        sample_id=facts.sample_id,
        facts=facts,
        system=template.system,
        user=user,
        prompt_sha256=template.sha256,
        request_sha256=h.hexdigest(),
        image_png=image_png,
        overlay_png=overlay,
        image_sha256=facts.image.image_sha256 or (hashlib.sha256(image_png).hexdigest() if image_png else ""),
    )
