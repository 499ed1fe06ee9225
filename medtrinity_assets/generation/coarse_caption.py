"""Coarse caption: the image's metadata (modality, organ, disease labels) as one sentence + fields.

This is MedTrinity's "metadata integration" step. It states only what the image table records, so
every later text can be checked against it, and in words about the image (the source's name stays in
the fields): a volume's labels are said to be in the volume, not on the slice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from medtrinity_assets.generation.sample_facts import ImageFacts
from medtrinity_assets.vocabulary import NON_FINDING_LABELS, article, humanise, join_words, modality_names, needs_noun, shown_code


@dataclass(frozen=True)
class CoarseCaption:
    sentence: str
    modality: str  # code as recorded (CT, MR, ...), '' unknown
    modality_name: str
    organ: str
    diseases: tuple[str, ...]
    source: str
    view: str  # e.g. axial slice

    def fields(self) -> dict:
        d = asdict(self)
        d["diseases"] = list(self.diseases)
        return d


def disease_labels(image: ImageFacts) -> tuple[str, ...]:
    """Disease label(s) of the image in first-seen order: the source's disease, then its class labels."""
    seen: list[str] = []
    for raw in (image.disease, *image.labels):
        name = humanise(raw)
        if name.lower() not in NON_FINDING_LABELS and name.lower() not in (s.lower() for s in seen):
            seen.append(name)
    return tuple(seen)


def coarse_caption(image: ImageFacts) -> CoarseCaption:
    long_name, _short = modality_names(image.modality)
    organ = humanise(image.organ)
    diseases = disease_labels(image)
    view = "axial slice" if image.axis == "axial" else ""
    code = shown_code(image.modality)
    named = f"{long_name} ({code})" if code else long_name
    noun = view or ("image" if needs_noun(long_name) else "")
    head = f"{named} {noun}".strip() if noun and not (view and not needs_noun(long_name)) else named
    if view and not needs_noun(long_name):
        head = f"{view.split()[0]} {named}"
    parts = [f"{article(head).capitalize()} {head}"]
    if organ:
        parts.append(f" of the {organ}")
    if diseases and image.slice_index >= 0:  # a volume's findings need not be on this slice
        parts.append(f"; the scanned volume contains {join_words(diseases)}")
    elif diseases:
        parts.append(f" showing {join_words(diseases)}")
    elif image.labels or image.disease:
        parts.append(" with a normal appearance")
    sentence = "".join(parts) + "."
    return CoarseCaption(
        sentence=sentence,
        modality=image.modality.upper() if image.modality else "",
        modality_name=long_name,
        organ=organ,
        diseases=diseases,
        source=image.source,
        view=view,
    )

