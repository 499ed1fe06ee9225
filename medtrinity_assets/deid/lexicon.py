"""Word lists the PHI detector leans on: person names and how common a word is.

- Person names: the US Census Bureau's 1990 lists of given names (5.5k) and surnames (88.8k), public
  domain, as shipped inside the ``names`` package (we read its data files; its random generator is
  never used).
- Common words: ``wordfreq`` (Zipf frequency in English; 4.0 = ten per million words). A name part
  that is an ordinary word ("Small", "Long", "White", "Young") identifies nobody on its own, so a
  lone occurrence of it never counts as a hit; the whole name in its usual spellings still does.
- Domain words: the modality, organ and finding terms of :mod:`medtrinity_assets.vocabulary`
  and the words of harmless image overlays (probe, preset and unit labels) are never names.

Everything loads lazily and once per process (the census lists take ~50 ms).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

COMMON_ZIPF = 4.0  # ordinary English word: at least ten occurrences per million words

# words printed on ultrasound / X-ray / endoscopy screens that are never identifiers
OVERLAY_WORDS = frozenset(
    """l r lt rt left right ant post sup inf med lat trans transverse sag sagittal long cor coronal axial
    prone supine erect upright standing portable ap pa lao rao ll rl view frame cine im img ser se
    pwr cfm cf pw cw pd color colour doppler gain gn dr dyn map fr fps hz khz mhz db cm mm mhz tis tib tic
    mi ao depth freq focus zoom res harm thi spd persist pers avg sv angle vel cm/s mm/s bpm hr ef
    rt lt liver kidney spleen gb cbd ivc aorta thyroid node lymph bladder uterus ovary testis
    probe phased linear convex curved abd abdo ob gyn msk msckel mscskel vasc card cardiac neo
    mark marker scale ruler grid caliper dist area vol volume acc ser# scan""".split()
)

_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\-]*")


@functools.lru_cache(maxsize=1)
def _census() -> tuple[frozenset[str], frozenset[str]]:
    import names  # the package's data files are the Census lists; nothing else of it is used

    folder = Path(names.__file__).parent

    def read(*files: str) -> frozenset[str]:
        out: set[str] = set()
        for f in files:
            for line in (folder / f).read_text(encoding="ascii", errors="ignore").splitlines():
                word = line.split(" ", 1)[0].strip().lower()
                if len(word) >= 2:
                    out.add(word)
        return frozenset(out)

    return read("dist.male.first", "dist.female.first"), read("dist.all.last")


def given_names() -> frozenset[str]:
    return _census()[0]


def surnames() -> frozenset[str]:
    return _census()[1]


@functools.lru_cache(maxsize=1)
def domain_words() -> frozenset[str]:
    from medtrinity_assets import vocabulary as V

    out: set[str] = set(OVERLAY_WORDS)
    terms = list(V.ORGAN_SYNONYMS) + list(V.FINDING_TERMS) + [t for ts in V.MODALITY_TERMS.values() for t in ts]
    for term in terms:
        out.update(w.lower() for w in _WORD_RE.findall(str(term)))
    return frozenset(out)


@functools.lru_cache(maxsize=65536)
def zipf(word: str) -> float:
    from wordfreq import zipf_frequency

    return float(zipf_frequency(word.lower(), "en"))


def is_common_word(word: str) -> bool:
    """An ordinary English or domain word: on its own it points at nobody."""
    w = word.lower().strip(".,;:'\"")
    return w in domain_words() or zipf(w) >= COMMON_ZIPF


def is_given_name(word: str) -> bool:
    return word.lower() in given_names()


def is_surname(word: str) -> bool:
    return word.lower() in surnames()


def is_name_word(word: str) -> bool:
    w = word.lower()
    return w in given_names() or w in surnames()
