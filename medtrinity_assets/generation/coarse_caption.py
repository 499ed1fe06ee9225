"""Coarse caption: the image's metadata (modality, organ, disease labels, source) as one sentence + fields.

This is MedTrinity's "metadata integration" step. It states only what the image table records, so
every later text can be checked against it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from medtrinity_assets.generation.records import ImageFacts

# modality code -> (long name, short name used in running text)
MODALITY_NAMES: dict[str, tuple[str, str]] = {
    "CT": ("computed tomography", "CT"),
    "MR": ("magnetic resonance", "MRI"),
    "MRI": ("magnetic resonance", "MRI"),
    "CR": ("radiograph", "X-ray"),
    "DX": ("radiograph", "X-ray"),
    "XR": ("radiograph", "X-ray"),
    "MG": ("mammogram", "mammogram"),
    "US": ("ultrasound image", "ultrasound"),
    "PT": ("positron emission tomography", "PET"),
    "NM": ("nuclear medicine scan", "scintigraphy"),
    "XA": ("X-ray angiogram", "angiogram"),
    "FUNDUS": ("colour fundus photograph", "fundus photograph"),
    "HISTO": ("histopathology image", "histology slide"),
    "DERM": ("dermoscopy image", "dermoscopy image"),
    "OCT": ("optical coherence tomography", "OCT"),
    "ENDO": ("endoscopy image", "endoscopy image"),
}
GENERIC_MODALITY = ("medical image", "image")
# other spellings sources use for the same modalities
MODALITY_SPELLINGS = {
    "HISTOLOGY": "HISTO", "PATHOLOGY": "HISTO", "HISTOPATHOLOGY": "HISTO", "WSI": "HISTO",
    "DERMOSCOPY": "DERM", "DERMATOLOGY": "DERM", "XRAY": "CR", "X-RAY": "CR", "MAMMOGRAPHY": "MG",
    "ULTRASOUND": "US", "ENDOSCOPY": "ENDO", "PET": "PT", "CFP": "FUNDUS",
}


SHOWN_CODES = {"CT", "MR", "PT", "US", "MG", "CR", "DX", "XA", "NM", "OCT"}  # DICOM codes worth spelling out


def canonical_modality(code: str) -> str:
    c = (code or "").strip().upper()
    return MODALITY_SPELLINGS.get(c, c)


def modality_names(code: str) -> tuple[str, str]:
    """(long, short) name of a modality code; unknown codes read as a generic 'medical image'."""
    return MODALITY_NAMES.get(canonical_modality(code), GENERIC_MODALITY)


_NOUNS = ("image", "photograph", "slide", "mammogram", "radiograph", "angiogram", "scan", "scintigraphy")


def needs_noun(name: str) -> bool:
    """'computed tomography' needs a noun after it ('... slice'); 'radiograph' does not."""
    return not name.endswith(_NOUNS)


def humanise(label: str) -> str:
    """'left_kidney_cyst' -> 'left kidney cyst' (labels are machine names in the tables)."""
    return " ".join((label or "").replace("_", " ").replace("-", " ").split())


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


_NON_FINDINGS = {"", "none", "normal", "unknown", "background", "no finding", "no_finding"}


def disease_labels(image: ImageFacts) -> tuple[str, ...]:
    """Disease label(s) of the image in first-seen order: the source's disease, then its class labels."""
    seen: list[str] = []
    for raw in (image.disease, *image.labels):
        name = humanise(raw)
        if name.lower() not in _NON_FINDINGS and name.lower() not in (s.lower() for s in seen):
            seen.append(name)
    return tuple(seen)


def coarse_caption(image: ImageFacts) -> CoarseCaption:
    long_name, _short = modality_names(image.modality)
    organ = humanise(image.organ)
    diseases = disease_labels(image)
    view = "axial slice" if image.axis == "axial" else ""
    code = canonical_modality(image.modality)
    named = f"{long_name} ({code})" if code in SHOWN_CODES else long_name
    noun = view or ("image" if needs_noun(long_name) else "")
    head = f"{named} {noun}".strip() if noun and not (view and not needs_noun(long_name)) else named
    if view and not needs_noun(long_name):
        head = f"{view.split()[0]} {named}"
    parts = [f"{'An' if head[0].lower() in 'aeiou' else 'A'} {head}"]
    if organ:
        parts.append(f" of the {organ}")
    if diseases:
        parts.append(f" labelled {_join(diseases)}")
    elif image.labels or image.disease:
        parts.append(" with no disease label")
    if image.source:
        parts.append(f", from source '{image.source}'")
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


def _join(items: tuple[str, ...] | list[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
