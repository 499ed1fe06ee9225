"""The offline default generator: a deterministic composer that phrases the facts and never decides them.

What it writes is training text: it states what the image shows -- modality, plane, window, the body
region and organs the slice itself shows (sizes measured), each finding with its long and short axis,
location, appearance in the unit the image has (HU only for calibrated CT; relative words and a
contrast-to-noise ratio for MR, ultrasound, X-ray, photographs and 8-bit images; an absolute attenuation
class for calibrated CT), and one hedged clause interpreting those measurements with a retrieved passage
(:mod:`..interpretation`). It never talks about how the dataset was made, never states an absence as a
disclaimer (only "no focal lesion in the liver" where a ground-truth liver mask holds none and the source
annotates lesions), and never guesses: an unknown spacing gives no millimetres, an unknown side no side.

Every clause carries the fact fields it was built from (``source``), so each statement traces back.
Phrasing varies per sample, chosen from a hash of (seed, sample_id), so reruns give identical text; the
measured numbers make most sentences unique, which keeps any one sentence out of all but a few
descriptions. The result is checked with the same consistency scorer as the blocking quality gate;
a clause the scorer objects to is dropped, never the sample.
"""

from __future__ import annotations

import hashlib
import re

from medtrinity_assets import vocabulary as V
from medtrinity_assets.generation.interpretation import Interpretation, attenuation_word, interpret
from medtrinity_assets.generation.results import STATUS_OK, GenerationResult, PromptRequest
from medtrinity_assets.generation.sample_facts import ImageFacts, SampleFacts, image_laterality
from medtrinity_assets.quality.consistency import score_triplet
from medtrinity_assets.roi.facts import RoiFacts
from medtrinity_assets.vocabulary import humanise, join_words, with_article

VERSION = "grounded-2.0"
MAX_DESCRIBED = 3  # findings described one by one; the rest are counted
MAX_ORGANS = 5  # organs named in the overview sentence
CAPTION_SOURCE = "caption:image.caption_in"  # clause source of the caption a source ships with the image
QUOTED_CAPTION = CAPTION_SOURCE  # kept for callers of the first version
_UNNAMED_RE = re.compile(r"(?:label|class|value)\s*(\d+)", re.IGNORECASE)
_WINDOW_RE = re.compile(r"ct:([a-z_ ]+)\(([-\d.]+)/([-\d.]+)\)")
WINDOW_NAMES = {"abdomen": "soft-tissue", "soft_tissue": "soft-tissue", "mediastinum": "mediastinal", "lung": "lung",
                "bone": "bone", "brain": "brain", "liver": "liver", "head": "brain"}
VIEW_NAMES = {"PA": "posteroanterior", "AP": "anteroposterior", "LAT": "lateral", "LL": "left lateral",
              "RL": "right lateral"}
AP_WORDS = {"anterior": "anteriorly", "posterior": "posteriorly", "central": "centrally"}
PAIRED = {"kidney": "kidneys", "lung": "lungs", "eye": "eyes", "breast": "breasts", "adrenal": "adrenals"}
MASS_NOUNS = frozenset({"bone", "fat", "air", "soft tissue", "muscle"})  # named without an article or a size
REGION_ADJECTIVES = {"abdomen": "abdominal", "pelvis": "pelvic", "chest": "chest", "head": "head", "neck": "neck"}
# Expert ROIs that frame the picture rather than name anatomy (the body outline, a fundus or ultrasound field
# of view, the tissue on a slide): never listed as organs; their extent is stated once, as a measure.
FRAME_LABELS = frozenset({"body", "field of view", "tissue", "background", "patient", "external"})
AERATED_LUNG_HU = -500.0  # a surrounding ring below this is air-filled lung


class Chooser:
    """Deterministic choices from a hash of (seed, sample_id): cheaper than a seeded PRNG per sample."""

    __slots__ = ("_state", "_bits", "_key")

    def __init__(self, seed: int | str, sample_id: str) -> None:
        self._key = f"{seed}\0{sample_id}".encode()
        self._state = int.from_bytes(hashlib.blake2b(self._key, digest_size=32).digest(), "big")
        self._bits = 256

    def pick(self, options):
        n = len(options)
        if n == 1:
            return options[0]
        if self._bits < 8:
            self._key = hashlib.blake2b(self._key, digest_size=32).digest()
            self._state = int.from_bytes(self._key, "big")
            self._bits = 256
        value = self._state & 0xFF
        self._state >>= 8
        self._bits -= 8
        return options[value % n]

    __call__ = pick


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _mm(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}".rstrip("0").rstrip(".")


def _cm(x_mm: float) -> str:
    return f"{x_mm / 10:.1f}"


def window_phrase(window: str) -> str:
    """'ct:abdomen(50/400)' -> 'soft-tissue window (level 50, width 400 HU)'; other windows say nothing."""
    m = _WINDOW_RE.match(window or "")
    if not m:
        return ""
    name = WINDOW_NAMES.get(m.group(1).strip(), humanise(m.group(1)))
    return f"{name} window (level {m.group(2)}, width {m.group(3)} HU)"


def mr_weighting(image: ImageFacts) -> str:
    """T1-/T2-/proton-density-weighted from the sequence name or TR/TE (standard cut-offs), else ''."""
    name = str(image.acq("PulseSequenceName") or "").upper()
    if name.startswith("T1"):
        return "T1-weighted"
    if name.startswith("T2"):
        return "T2-weighted"
    try:
        tr, te = float(image.acq("RepetitionTime")), float(image.acq("EchoTime"))
    except (TypeError, ValueError):
        return ""
    if tr <= 800 and te <= 30:
        return "T1-weighted"
    if tr >= 2000 and te >= 80:
        return "T2-weighted"
    if tr >= 2000 and te <= 40:
        return "proton-density-weighted"
    return ""


def organ_region(roi: RoiFacts) -> str:
    """The organ a finding lies in, in words; '' for tissue classes and frames (body, fat, air ...), which
    hold a finding without saying where it is."""
    region = humanise(roi.region)
    return "" if not region or region.lower() in V.TISSUE_CLASSES else region


def region_phrase(image: ImageFacts) -> str:
    """The body region the slice shows, in words ('upper abdomen' for an abdominal slice of the trunk)."""
    if image.body_region_detail:
        return image.body_region_detail
    region = image.body_region
    if region == "abdomen" and image.axis == "axial" and V.modality_class(image.modality) == "CT":
        return "upper abdomen" if any(o in ("liver", "spleen") for o in image.visible_organs) else "abdomen"
    if region == "head" and "brain" in (image.organ or "").lower():
        return "head"
    return region


class Composer:
    """Facts -> clauses -> five attributes + a paragraph."""

    def __init__(self, seed: int | str = 0) -> None:
        self.seed = seed

    # ---- names --------------------------------------------------------------------------------------
    @staticmethod
    def roi_name(roi: RoiFacts) -> str:
        name = humanise(roi.label)
        m = _UNNAMED_RE.fullmatch(name)
        if m or not name:  # a label value without a name: only the finding is known, not what it is
            return "focal lesion"
        return name

    def refer(self, roi: RoiFacts, findings: list[RoiFacts]) -> str:
        """'It' for a single finding, 'The cyst' when its name is unique, else 'The second cyst'."""
        if len(findings) == 1:
            return "It"
        name = self.roi_name(roi)
        same = [r for r in findings if self.roi_name(r) == name]
        if len(same) == 1:
            return f"The {name}"
        return f"The {V.ORDINALS[same.index(roi)]} {name}"

    @staticmethod
    def surround_of(roi: RoiFacts) -> str:
        """What surrounds a finding: aerated lung (calibrated CT, air-filled ring), else its organ, else ''."""
        if roi.value_unit == "HU" and roi.surround_value is not None and roi.surround_value < AERATED_LUNG_HU:
            return "aerated lung"
        return organ_region(roi)

    # ---- the overview sentence ----------------------------------------------------------------------
    def modality_head(self, img: ImageFacts, c: Chooser) -> tuple[str, list[str]]:
        """('axial CT image', sources) -- the image kind with its plane or view and MR weighting."""
        m = V.modality(img.modality)
        src = ["image.modality"]
        if m is None:
            return "medical image", src
        plane = "axial " if img.axis == "axial" else ""
        if plane:
            src.append("image.axis")
        cls = m.code
        if cls == "CT":
            noun = c(["CT image", "CT slice", "computed tomography image", "CT section"]) if plane else c(["CT image", "computed tomography image"])
        elif cls == "MR":
            weighting = mr_weighting(img)
            if weighting:
                src.append("image.acquisition")
            noun = f"{weighting + ' ' if weighting else ''}{c(['MRI slice', 'MR image', 'magnetic resonance image'])}"
        elif cls == "XR":
            view = VIEW_NAMES.get(str(img.acq("ViewPosition") or "").upper(), "")
            if view:
                src.append("image.acquisition")
            return f"{view + ' ' if view else ''}{c(['radiograph', 'X-ray'])}", src
        elif cls == "US":
            noun = c(["ultrasound image", "sonographic image"])
        else:
            noun = m.name
        return f"{plane}{noun}", src

    def organ_list(self, facts: SampleFacts, c: Chooser) -> tuple[str, list[str]]:
        """'the liver (15.1 × 11.8 cm), the spleen (9.0 × 5.2 cm) and both kidneys' from the anatomy ROIs."""
        by_organ: dict[str, list[RoiFacts]] = {}
        for r in facts.anatomy:
            name = humanise(r.label)
            if name and name.lower() not in FRAME_LABELS:
                by_organ.setdefault(name, []).append(r)
        items = []
        for name, parts in sorted(by_organ.items(), key=lambda kv: -sum(p.area_fraction or 0 for p in kv[1])):
            sides = {p.side for p in parts if p.side in ("left", "right")}
            organ = V.ORGAN_SYNONYMS.get(name, name)
            if organ in PAIRED and sides == {"left", "right"}:
                sizes = []
                for side in ("right", "left"):
                    part = max((p for p in parts if p.side == side), key=lambda p: p.area_fraction or 0)
                    if part.long_axis_mm and part.long_axis_mm >= 20:
                        sizes.append(f"{side} {_cm(part.long_axis_mm)} × {_cm(part.short_axis_mm)} cm")
                items.append(f"both {PAIRED[organ]}" + (f" ({', '.join(sizes)})" if sizes else ""))
                continue
            if organ in PAIRED and len(sides) == 1 and len(parts) == 1:
                name = f"{sides.pop()} {name}"
            if name in MASS_NOUNS:
                items.append(name)
                continue
            big = max(parts, key=lambda p: p.area_fraction or 0)
            size = f" ({_cm(big.long_axis_mm)} × {_cm(big.short_axis_mm)} cm)" if big.long_axis_mm and big.long_axis_mm >= 20 else ""
            items.append(f"the {name}{size}")
        if not items:
            return "", []
        return join_words(items[:MAX_ORGANS]), ["rois.anatomy"]

    def absence(self, facts: SampleFacts) -> tuple[str, list[str]]:
        """'with no focal lesion in the liver or kidneys at this level': only where a ground-truth organ mask
        is on the slice and the source annotates findings of that organ (its labels name one)."""
        if facts.findings or not facts.anatomy or not all(r.origin == "ground_truth" for r in facts.anatomy):
            return "", []
        annotated = set().union(*(V.organs_in(humanise(x)) for x in facts.image.labels)) if facts.image.labels else set()
        organs = []
        for r in facts.anatomy:
            organ = V.ORGAN_SYNONYMS.get(humanise(r.label).lower(), "")
            if organ and organ in annotated and organ not in organs:
                organs.append(organ)
        if not organs:
            return "", []
        names = [PAIRED.get(o, o) if sum(1 for r in facts.anatomy if humanise(r.label) == o) > 1 else o for o in organs]
        return f"no focal lesion in the {' or '.join(names)} at this level", ["rois.anatomy", "image.labels"]

    def overview(self, facts: SampleFacts, findings: list[RoiFacts], c: Chooser) -> list[tuple[str, str, str]]:
        img = facts.image
        head, src = self.modality_head(img, c)
        cls = V.modality_class(img.modality)
        region = region_phrase(img)
        where = ""
        if cls == "XR":
            side = image_laterality(img)
            part = humanise(str(img.acq("body_part") or "")).lower() or region
            if part:
                where = f" of the {side + ' ' if side else ''}{part}"
                src.append("image.body_region" if region else "image.acquisition")
        elif cls == "FUNDUS":
            where = c([" of the retina", " showing the retina"])  # not 'a fundus photograph of the ocular fundus'
        elif cls == "HISTO":
            organ = humanise(img.organ)
            where = f" of {organ} tissue" if organ else " of a stained tissue section"
            src.append("image.organ")
        elif region:
            where = f" of the {region}"
            src.append("image.body_region")
            # 'an (axial) abdominal CT image' as often as 'of the abdomen'; CT only ('a head T1-weighted MRI slice')
            if cls == "CT" and region in REGION_ADJECTIVES and c([False, True]):
                adjective = REGION_ADJECTIVES[region]
                head = f"axial {adjective} {head[len('axial '):]}" if head.startswith("axial ") else f"{adjective} {head}"
                where = ""
        text = f"{with_article(head)}{where}"
        window = window_phrase(img.window)
        if window:
            text += c([f" in a {window}", f", {window}", f" displayed in a {window}"])
            src.append("image.window")
        acquired = self.acquisition_phrase(img)
        if acquired:
            text += acquired
            src.append("image.acquisition")
        organs, osrc = self.organ_list(facts, c)
        absent, asrc = self.absence(facts)
        if organs:
            text += c([f", showing {organs}", f", including {organs}", f"; it shows {organs}"])
            src += osrc
            if absent:
                text += f", with {absent}"
                src += asrc
        n = len(facts.findings)
        if n > 1:
            counted = f"{V.NUMBER_WORDS.get(n, str(n))} focal findings"
            text += c([f", and contains {counted}", f"; {counted} are present"]) if organs else f"; {counted} are present"
            src.append("rois.count")
        text = _cap(text) + "."
        out = [("modality", text, ",".join(dict.fromkeys(src)))]
        if not organs:
            extra = self.outline_or_field(facts, c)
            if extra:
                out.append(extra)
        for key, value in img.measurements:
            if key == "cardiothoracic_ratio" and isinstance(value, (int, float)):
                out.append(("organ", c([f"The cardiothoracic ratio measures {value:.2f}.",
                                        f"The cardiothoracic ratio is {value:.2f}."]), "image.measurements.cardiothoracic_ratio"))
        return out

    @staticmethod
    def acquisition_phrase(img: ImageFacts) -> str:
        """', acquired at 1.5 T with 6 mm slices' from the header (MR field strength, slice thickness)."""
        bits = []
        try:
            tesla = float(img.acq("MagneticFieldStrength"))
            if 0.1 <= tesla <= 12:
                bits.append(f"at {tesla:g} T")
        except (TypeError, ValueError):
            pass
        try:
            thick = float(img.acq("SliceThickness"))
            if 0 < thick <= 20 and V.modality_class(img.modality) in ("CT", "MR"):
                bits.append(f"with {_mm(thick)} mm slices")
        except (TypeError, ValueError):
            pass
        return f", acquired {' '.join(bits)}" if bits else ""

    def outline_or_field(self, facts: SampleFacts, c: Chooser) -> tuple[str, str, str] | None:
        """Without organ masks: the size of the body outline, else the field of view, when the spacing is known."""
        img = facts.image
        body = next((r for r in facts.anatomy if r.label == "body" and r.long_axis_mm), None)
        part = region_phrase(img) or "body"
        if body is not None:
            return ("organ", c([f"The {part} measures {_cm(body.long_axis_mm)} × {_cm(body.short_axis_mm)} cm in this plane.",
                                f"In this plane the {part} spans {_cm(body.long_axis_mm)} × {_cm(body.short_axis_mm)} cm."]),
                    "rois.anatomy.body.long_axis_mm,short_axis_mm")
        if img.pixel_spacing and img.width and img.height and V.modality_class(img.modality) in ("CT", "MR"):
            w, h = img.width * img.pixel_spacing[1], img.height * img.pixel_spacing[0]
            return ("modality", f"The field of view is {_mm(w)} × {_mm(h)} mm.", "image.pixel_spacing,image.width,image.height")
        frame = next((r for r in facts.anatomy if r.label in ("tissue", "field of view") and r.area_fraction), None)
        if frame is not None and frame.area_fraction < 0.98:
            share = f"{round(100 * frame.area_fraction)}%"
            if frame.label == "tissue":
                text = c([f"Tissue fills about {share} of the field.", f"About {share} of the field is covered by tissue."])
            else:
                shape = "circular " if frame.shape == "round" else ""
                text = c([f"The {shape}imaged field fills about {share} of the frame.",
                          f"About {share} of the frame is taken up by the {shape}imaged field."])
            return ("organ", text, f"rois.anatomy.{frame.label.replace(' ', '_')}.area_fraction")
        return None

    # ---- findings ------------------------------------------------------------------------------------
    def size_phrase(self, roi: RoiFacts) -> tuple[str, str, str]:
        """(before the name, after the location, source): '12 × 9 mm' with the spacing, else the image share."""
        if roi.long_axis_mm:
            return f"{_mm(roi.long_axis_mm)} × {_mm(roi.short_axis_mm or roi.long_axis_mm)} mm ", "", "long_axis_mm,short_axis_mm"
        if roi.area_fraction is not None:
            pct = 100 * roi.area_fraction
            share = f"about {pct:.1f}% of the image" if pct >= 0.1 else "less than 0.1% of the image"
            return "", f", covering {share}", "area_fraction"
        word = V.SIZE_WORDS.get(roi.size_class, "")
        return (f"{word} " if word else ""), "", "size_class" if word else ""

    def location(self, roi: RoiFacts, findings: list[RoiFacts], names: dict[str, str], c: Chooser,
                 stated: set[frozenset[str]] | None = None) -> tuple[str, list[str]]:
        """'within the liver, 6 mm from its edge, on the patient's right, anteriorly, 18 mm from the liver cyst';
        a distance between two findings is said once (``stated`` remembers the pairs already given)."""
        parts, src = [], []
        region = organ_region(roi)
        rel = roi.relations
        if region:
            if region in rel.inside and rel.distance_to_organ_edge_mm is not None and rel.distance_unit == "mm" \
                    and rel.nearest_organ == roi.region:
                d = rel.distance_to_organ_edge_mm
                edge = c([f"{_mm(d)} mm from its edge", f"{_mm(d)} mm deep to its surface"]) if d >= 1 else "reaching its edge"
                parts.append(f"within the {region}, {edge}")
                src += ["region", "relations"]
            else:
                parts.append(c([f"in the {region}", f"within the {region}"]))
                src.append("region")
        if roi.side in ("left", "right"):
            parts.append(c([f"on the patient's {roi.side}", f"on the patient's {roi.side} side"]))
            src.append("side")
        elif roi.side == "midline":
            parts.append("in the midline")
            src.append("side")
        if roi.ap_position in AP_WORDS:
            parts.append(AP_WORDS[roi.ap_position])
            src.append("ap_position")
        if roi.vertical_position in ("superior", "inferior"):
            parts.append(f"in the {roi.vertical_position} part of the image")
            src.append("vertical_position")
        adjacent = [humanise(a) for a in rel.adjacent if a.lower() not in V.TISSUE_CLASSES and a != roi.region]
        if adjacent:
            parts.append(f"abutting the {join_words(adjacent[:2])}")
            src.append("relations")
        for other in (rel.other_lesions or ())[:2]:
            pair = frozenset((roi.roi_id, other.roi_id))
            if other.roi_id in names and rel.distance_unit == "mm" and other.roi_id != roi.roi_id \
                    and (stated is None or pair not in stated):
                parts.append(f"{_mm(other.distance)} mm from the {names[other.roi_id]}")
                src.append("relations")
                if stated is not None:
                    stated.add(pair)
        return ", ".join(parts), src

    def appearance(self, roi: RoiFacts, facts: SampleFacts, who: str, c: Chooser, cited: tuple[str, ...]) -> tuple[str, list[str]]:
        """'It is hypodense relative to the liver (-54 HU), with a homogeneous interior.' The absolute CT
        attenuation is said here unless the interpretation that follows cites it -- and always against
        aerated lung, where the contrast alone would mislead."""
        surround = self.surround_of(roi)
        src: list[str] = []
        parts: list[str] = []
        lung = surround == "aerated lung"
        if roi.attenuation and roi.mean_value is not None and (lung or f"att:{roi.attenuation}" not in cited):
            att = f"{attenuation_word(roi.attenuation)} attenuation (mean {roi.mean_value:.0f} HU)"
            src += ["attenuation", "mean_value"]
            if lung and roi.surround_value is not None:
                parts.append(f"{c(['has', 'shows'])} {att}, denser than the surrounding aerated lung (about {roi.surround_value:.0f} HU)")
                src.append("surround_value")
            else:
                parts.append(f"{c(['has', 'shows'])} {att}")
        if roi.intensity and not lung:
            parts.append(self.contrast_words(roi, facts, surround, c))
            src += ["intensity", "contrast"]
        if not parts:
            if not roi.texture:
                return "", []
            return f"{who} is {roi.texture}.", ["texture"]
        text = f"{who} " + " and ".join(parts)  # 'has fluid attenuation (mean 5 HU) and is hypodense relative to ...'
        if roi.texture:
            text += c([f", with a {roi.texture} interior", f", with {roi.texture} content"])
            src.append("texture")
        return text + ".", src

    @staticmethod
    def contrast_words(roi: RoiFacts, facts: SampleFacts, surround: str, c: Chooser) -> str:
        """'is hypodense relative to the liver (-54 HU)' (calibrated CT), 'is hyperintense relative to the
        brain (contrast-to-noise ratio 3.1)' (MR), 'is darker than the surrounding tissue' (photographs)."""
        target = f"the {surround}" if surround else "the surrounding tissue"
        word = roi.intensity
        if word in ("brighter", "darker"):
            phrase = f"is {word} than {target}"
            if V.modality_class(facts.image.modality) == "XR":
                phrase = f"is {'more radiopaque' if word == 'brighter' else 'more radiolucent'} ({word}) than {target}"
        elif word == "similar":
            return f"is similar in brightness to {target}"
        elif word.startswith("iso"):
            return f"is {word} to {target}"
        else:
            phrase = f"is {word} {c(['relative to', 'compared with'])} {target}"
        if roi.contrast is None:
            return phrase
        if roi.contrast_unit == "HU":
            if roi.mean_value is not None and roi.surround_value is not None:
                against = c(["against", "versus"])
                return f"{phrase} (mean {roi.mean_value:.0f} HU {against} {roi.surround_value:.0f} HU)"
            return f"{phrase} ({roi.contrast:+.0f} HU)"
        return f"{phrase} (contrast-to-noise ratio {abs(roi.contrast):.1f})"

    def finding(self, roi: RoiFacts, facts: SampleFacts, findings: list[RoiFacts], names: dict[str, str],
                c: Chooser, cited: tuple[str, ...] = (), stated: set[frozenset[str]] | None = None) -> list[tuple[str, str, str]]:
        name = self.roi_name(roi)
        size, size_tail, size_src = self.size_phrase(roi)
        descr = [w for w in (roi.shape, V.MARGIN_WORDS.get(roi.margin, "")) if w]
        src = ["label"] + ([size_src] if size_src else []) + (["shape"] if roi.shape else []) + (["margin"] if roi.margin in V.MARGIN_WORDS else [])
        where, wsrc = self.location(roi, findings, names, c, stated)
        subject = f"{size}{', '.join(descr) + ' ' if descr else ''}{name}"
        subject = with_article(subject)
        if where:
            verb = c(["lies", "is seen", "is present", "sits"])
            text = f"{_cap(subject)} {verb} {where}{size_tail}."
        else:
            text = f"{_cap(c(['there is ', 'the image shows ']) + subject)}{size_tail}."
        out = [("roi_location", text, f"roi:{roi.roi_id}." + ",".join(dict.fromkeys(src + wsrc)))]
        who = self.refer(roi, findings)
        if roi.intensity and roi.intensity.lower() in who.lower():
            who = "It"  # not 'The hyperdense lesion is hyperdense ...': the sentence before named this finding
        look, lsrc = self.appearance(roi, facts, who, c, cited)
        if look:
            out.append(("texture", look, f"roi:{roi.roi_id}." + ",".join(dict.fromkeys(lsrc))))
        return out

    # ---- images without finding ROIs -------------------------------------------------------------------
    def image_level(self, facts: SampleFacts, c: Chooser) -> list[tuple[str, str, str]]:
        """What a 2D image's own labels and caption say it shows (no ROI, so no location is claimed)."""
        img = facts.image
        out = []
        if img.slice_index < 0 and not facts.rois:
            named = [humanise(x) for x in (img.disease, *img.labels) if x and humanise(x).lower() not in V.NON_FINDING_LABELS]
            normal = [humanise(x) for x in img.labels if humanise(x).lower().startswith("normal")]
            if named and not normal:
                things = join_words([x if x.endswith("s") else with_article(x) for x in named])
                out.append(("organ", c([f"The image shows {things}.", f"It shows {things}."]), "image.labels"))
            elif normal:
                out.append(("organ", f"The appearance is that of {with_article(normal[0])}.", "image.labels"))
        caption = " ".join(img.caption_in.split()).strip()
        if caption:
            out.append(("organ", caption if caption.endswith((".", "!", "?")) else caption + ".", CAPTION_SOURCE))
        return out

    # ---- attributes (the five short MedTrinity fields) -------------------------------------------------
    def attributes(self, facts: SampleFacts, findings: list[RoiFacts], interpretations: dict[str, Interpretation],
                   c: Chooser) -> dict[str, str]:
        img = facts.image
        head, _ = self.modality_head(img, Chooser(self.seed, img.sample_id + "/attributes"))
        window = window_phrase(img.window)
        modality = head + (f", {window}" if window else "")
        organs, _ = self.organ_list(facts, c)
        region = region_phrase(img)
        organ = (f"{region}: {organs}" if region and organs else region or organs)
        if V.modality_class(img.modality) in V.PHOTOGRAPHIC and img.organ:  # a slide or photograph shows the tissue itself
            organ = f"{humanise(img.organ)} tissue" if V.modality_class(img.modality) == "HISTO" else humanise(img.organ)
        names = {r.roi_id: self.roi_name(r) for r in findings}
        locations, textures, relations = [], [], []
        for roi in findings:
            where, _ = self.location(roi, findings, {}, Chooser(self.seed, roi.roi_id))
            size, tail, _ = self.size_phrase(roi)
            bits = [b for b in (size.strip(), where, tail.lstrip(", ")) if b]
            locations.append(f"{names[roi.roi_id]}: {', '.join(bits)}" if bits else names[roi.roi_id])
            look = [w for w in (f"{attenuation_word(roi.attenuation)} attenuation (mean {roi.mean_value:.0f} HU)"
                                if roi.attenuation and roi.mean_value is not None else "",
                                roi.intensity, roi.texture, roi.shape, V.MARGIN_WORDS.get(roi.margin, "")) if w]
            if look:
                textures.append(f"{names[roi.roi_id]}: {', '.join(look)}")
            rel = [f"within the {humanise(x)}" for x in roi.relations.inside if x.lower() not in V.TISSUE_CLASSES]
            rel += [f"abutting the {humanise(x)}" for x in roi.relations.adjacent
                    if x.lower() not in V.TISSUE_CLASSES and x != roi.region]
            rel += [f"{_mm(o.distance)} mm from the {names[o.roi_id]}" for o in roi.relations.other_lesions or ()
                    if o.roi_id in names and roi.relations.distance_unit == "mm"]
            if rel:
                relations.append(f"{names[roi.roi_id]}: {', '.join(rel)}")
        for interp in interpretations.values():  # verbatim: the scorer reads it as the borrowed clause it is
            textures.append(interp.text)
        return {"modality": _cap(modality), "organ": organ, "roi_location": "; ".join(locations),
                "texture": "; ".join(textures), "relations": "; ".join(relations)}

    # ---- the whole triplet ------------------------------------------------------------------------------
    def compose(self, facts: SampleFacts) -> GenerationResult:
        c = Chooser(self.seed, facts.sample_id)
        findings = sorted(facts.findings, key=lambda r: -(r.area_fraction or 0.0))[:MAX_DESCRIBED]
        names = {r.roi_id: self.roi_name(r) for r in findings}
        for r in findings:  # 'the second lesion' when two findings share a name
            if sum(1 for x in findings if self.roi_name(x) == names[r.roi_id]) > 1:
                names[r.roi_id] = self.refer(r, findings)[len("The "):]
        clauses: list[tuple[str, str, str]] = list(self.overview(facts, findings, c))
        interpretations: dict[str, Interpretation] = {}
        done: set[str] = set()
        stated: set[frozenset[str]] = set()
        for roi in findings:
            interp = None
            if roi.label not in done:
                interp = interpret(roi, facts.image, facts.passages, self.surround_of(roi), c)
            clauses += self.finding(roi, facts, findings, names, c, cited=interp.features if interp else (), stated=stated)
            if interp is not None:
                done.add(roi.label)
                interpretations[roi.roi_id] = interp
                pid = interp.passage.passage_id
                pid = pid if pid.startswith(f"{interp.passage.corpus}:") else f"{interp.passage.corpus}:{pid}"
                clauses.append(("texture", interp.text, f"passage:{pid}"))
        if not facts.findings:
            clauses += self.image_level(facts, c)
        attributes = self.attributes(facts, findings, interpretations, c)
        clauses, attributes = self._checked(facts, clauses, attributes)
        if not facts.findings:  # after the gate: the caption it kept, not the one it may have refused
            clauses = self._without_restated_head(facts, clauses)
        rows = [{"field": f, "text": t, "source": s} for f, t, s in clauses]
        return GenerationResult(sample_id=facts.sample_id, status=STATUS_OK, description=" ".join(t for _, t, _ in clauses),
                                attributes=attributes, clauses=rows, attempts=1)

    @staticmethod
    def _without_restated_head(facts: SampleFacts, clauses):
        """The bare overview ('A CT image of the abdomen.') is dropped when the source's own caption names the
        image's modality: it would only restate the caption's opening in poorer words."""
        cls = V.modality_class(facts.image.modality)
        caption = next((t for _, t, src in clauses if src == CAPTION_SOURCE), "")
        if not clauses or not cls or cls not in V.modalities_in(caption.lower()):
            return clauses
        bare = set(clauses[0][2].split(",")) <= {"image.modality", "image.axis", "image.body_region"}
        return clauses[1:] if bare and clauses[0][0] == "modality" else clauses

    def _checked(self, facts: SampleFacts, clauses, attributes):
        """Drop the borrowed clauses (knowledge, a source caption) the quality gate's scorer objects to."""
        scorer_facts = facts.scorer_facts()
        quoted = [t for _, t, s in clauses if s.startswith(("passage:", "caption:"))]
        issues = score_triplet(" ".join(t for _, t, _ in clauses), attributes, scorer_facts, quoted)
        if not issues:
            return clauses, attributes
        kept = []
        for f, t, s in clauses:
            if s.startswith(("passage:", "caption:")) and score_triplet(t, None, scorer_facts, [t]):
                attributes = {k: v.replace(t.rstrip("."), "").strip("; ") for k, v in attributes.items()}
                continue
            kept.append((f, t, s))
        return kept, attributes


class GroundedBackend:
    """Backend interface over :class:`Composer` (no model, no network, no image bytes needed)."""

    name = "grounded"
    needs_image = False
    needs_prompt = False  # composes from the facts, not from the rendered prompt

    def __init__(self, seed: int | str = 0) -> None:
        self.seed = seed
        self.model = f"composer(seed={seed})"
        self.version = VERSION
        self._composer = Composer(seed)

    def generate(self, batch: list[PromptRequest]) -> list[GenerationResult]:
        return [self.compose(r.facts) for r in batch]

    def compose(self, facts: SampleFacts) -> GenerationResult:
        return self._composer.compose(facts)

    def close(self) -> None:
        pass
