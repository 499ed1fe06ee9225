"""Find identifiers in a piece of text: header values, and anything that looks like a name, ID, date or time.

One detector serves free text (captions, CSV columns, DICOM descriptions), the words an OCR engine
reads in pixels, and path components. It returns *findings* (kind, span, rule) and never keeps the
matched value anywhere else, so a report can say "patient name part in caption" without printing it.

Kinds: ``patient_name`` (a part or spelling of a person-name value from a header), ``person_name``
(looks like a person's name), ``id``, ``date``, ``time``, ``institution``, ``contact`` (e-mail, phone).

Rules, in the order they are tried:
- **known values** (:class:`KnownValues`): header values in their usual spellings -- ``FAMILY^GIVEN``,
  "Given Family", "FAMILY, Given", initials, ``_ - .`` for spaces -- and, for names, single parts that
  are not ordinary words (so "Small" from ``SMALL^JOHN`` never matches "a small lesion");
- **patterns**: dates (ISO, numeric with / . -, month names, DICOM YYYYMMDD), times (hh:mm[:ss]),
  IDs (a token with four or more digits, or any token after an ID label such as MRN/ID/Acc#),
  e-mail and phone numbers, institutions (a capitalised word beside Hospital/Med Ctr/Clinic ...);
- **names**: ``A^B``; a title or label (Mr, Dr, Name:, Patient:) before capitalised words; two
  capitalised words of which one is a census given name and the other a surname or an uncommon word;
  "FAMILY, Given"; initials before a surname ("J. Smith").
What is never a finding: measurements with units (3cm, 12MHz, 100%), short probe/preset codes (C5-1,
M12L), L/R markers and the domain words of :mod:`medtrinity_assets.deid.lexicon`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from medtrinity_assets.deid import lexicon as L

KINDS = ("patient_name", "institution", "date", "time", "contact", "person_name", "id")  # merge priority
KIND_WORDS = {
    "patient_name": "patient name part", "person_name": "person name", "id": "ID", "date": "date",
    "time": "time", "institution": "institution", "contact": "contact detail",
    "unrecognised_word": "unrecognised word (possible name)",
}


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    rule: str  # known | pattern | name | label


# ---------------------------------------------------------------------------------------------- known values

_UID_RE = re.compile(r"^\d+(\.\d+){2,}$")
_INSTITUTION_WORDS = frozenset(
    "hospital hosp clinic clinics medical med center centre ctr university univ institute inst health healthcare "
    "infirmary imaging radiology hospitals klinik klinikum krankenhaus hopital ospedale".split()
)
RARE_ZIPF = 2.5  # rarer than ~0.3 per million words
_MIN_LEN = 4  # shorter strings match by chance inside hashes and the bytes of embedded images


def _dicom_date(value: str) -> bool:
    if not re.fullmatch(r"(19|20)\d{6}", value):
        return False
    month, day = int(value[4:6]), int(value[6:8])
    return 1 <= month <= 12 and 1 <= day <= 31


def classify_value(value: str) -> str:
    """Kind of an identifier value handed over by a reader (headers, CSV subject columns, path names)."""
    v = value.strip()
    if "^" in v:
        return "patient_name"
    if _dicom_date(v) or re.fullmatch(r"(19|20)\d\d-\d\d-\d\d", v):
        return "date"
    if _UID_RE.match(v) or any(c.isdigit() for c in v):
        return "id"
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", v)]
    if len(words) > 1 and any(w in _INSTITUTION_WORDS for w in words):
        return "institution"
    return "id" if len(words) <= 1 else "institution"


def date_spellings(value: str) -> set[str]:
    """A DICOM date in the forms people and devices print it."""
    if _dicom_date(value):
        y, m, d = value[:4], value[4:6], value[6:8]
    else:
        m_ = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)", value)
        if not m_:
            return {value}
        y, m, d = m_.groups()
    out = {f"{y}{m}{d}", f"{y}-{m}-{d}", f"{y}/{m}/{d}", f"{y}.{m}.{d}", f"{m}/{d}/{y}", f"{d}/{m}/{y}",
           f"{d}.{m}.{y}", f"{m}-{d}-{y}", f"{d}-{m}-{y}"}
    return out


def name_spellings(value: str) -> tuple[set[str], set[str]]:
    """(whole spellings, lone parts) of a DICOM PN value ``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX``.

    Lone parts are words of four or more letters that are not ordinary words."""
    parts = [p.strip() for p in value.split("^")]
    family, given = (parts + ["", ""])[:2]
    fam_words = family.split()
    giv_words = given.split()
    whole: set[str] = set()
    if family and given:
        whole |= {f"{family}^{given}", f"{given} {family}", f"{family}, {given}", f"{family},{given}",
                  f"{family} {given}", f"{given[0]}. {family}", f"{given[0]} {family}", f"{given[0]}.{family}",
                  f"{family}, {given[0]}.", f"{family} {given[0]}."}
        for sep in ("_", "-", ".", ""):
            whole |= {f"{family}{sep}{given}".replace(" ", sep), f"{given}{sep}{family}".replace(" ", sep)}
    whole.add(value.strip("^"))
    lone = {w for w in fam_words + giv_words if len(w) >= _MIN_LEN and w.isalpha() and not L.is_common_word(w)}
    return {w for w in whole if len(w) >= _MIN_LEN}, lone


@dataclass
class KnownValues:
    """Identifier values of the inputs, grouped by kind, compiled into one pattern per kind.

    ``public_words``: words that are public by construction (the configured source names) and are
    therefore never searched alone, even when a patient's name shares them."""

    values: dict[str, set[str]] = field(default_factory=dict)
    public_words: frozenset[str] = frozenset()

    @classmethod
    def from_values(cls, values: Iterable[str], public_words: Iterable[str] = ()) -> KnownValues:
        out = cls(public_words=frozenset(w.lower() for w in public_words))
        for raw in values:
            v = str(raw or "").strip()
            if len(v) < 3 or _placeholder(v) or v.lower() in _EMPTY_VALUES:
                continue
            out.values.setdefault(classify_value(v), set()).add(v)
        return out

    def __len__(self) -> int:
        return sum(len(v) for v in self.values.values())

    def spellings(self) -> dict[str, set[str]]:
        """kind -> strings to search (``patient_name`` whole spellings; lone parts under ``patient_name``)."""
        out: dict[str, set[str]] = {}
        for kind, vals in self.values.items():
            bucket = out.setdefault(kind, set())
            for v in vals:
                if kind == "patient_name":
                    whole, lone = name_spellings(v)
                    bucket |= whole
                    bucket |= {w for w in lone if w.lower() not in self.public_words}
                elif kind == "date":
                    bucket |= date_spellings(v)
                elif kind == "institution":
                    bucket.add(v)
                    for sep in ("_", "-", ".", ""):
                        bucket.add(re.sub(r"\s+", sep, v))
                else:
                    if v.lower() in L.domain_words() or (v.isalpha() and L.is_common_word(v)):
                        continue
                    bucket.add(v)
                    if re.search(r"[\s^]", v):
                        bucket |= {re.sub(r"[\s^]+", sep, v) for sep in ("_", "-", ".", "")}
        return {k: {s for s in v if len(s) >= _MIN_LEN and s.lower() not in _EMPTY_VALUES} for k, v in out.items() if v}

    def patterns(self) -> dict[str, re.Pattern[str]]:
        """kind -> one case-insensitive pattern, bounded so that a value never matches inside a longer word."""
        cache = getattr(self, "_patterns", None)
        if cache is None:
            cache = {}
            for kind, strings in self.spellings().items():
                alternation = "|".join(re.escape(s) for s in sorted(strings, key=len, reverse=True))
                cache[kind] = re.compile(rf"(?<![A-Za-z0-9])(?:{alternation})(?![A-Za-z0-9])", re.IGNORECASE)
            self._patterns = cache
        return cache

    def fuzzy_keys(self) -> dict[str, str]:
        """OCR-tolerant keys (upper case, letters and digits only, 0/O 1/I 5/S 8/B folded) -> kind,
        for values of five or more characters; parts of names included when they are not common words."""
        out: dict[str, str] = {}
        for kind, strings in self.spellings().items():
            for s in strings:
                key = ocr_fold(s)
                if len(key) >= 5 or (kind == "patient_name" and len(key) >= 4):
                    out[key] = kind
        return out


_EMPTY_VALUES = frozenset({"anonymous", "anonymized", "anonymised", "anon", "unknown", "none", "null", "removed",
                           "redacted", "[redacted]", "n/a", "na", "test", "phantom"})


def _placeholder(value: str) -> bool:
    """Filler a header holds instead of a value ("----", "00000", "XXXX"): identifies nobody, matches noise."""
    alnum = [c for c in value.lower() if c.isalnum()]
    return len(alnum) < 3 or len(set(alnum)) == 1


_FOLD = str.maketrans({"0": "O", "1": "I", "5": "S", "8": "B", "|": "I", "$": "S"})


def ocr_fold(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper().translate(_FOLD)).translate(_FOLD)


# ---------------------------------------------------------------------------------------------- patterns

_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE_RES = [
    re.compile(r"(?<![\w.])(?:19|20)\d\d[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])(?![\w])"),
    re.compile(r"(?<![\w.])\d{1,2}[-/.]\d{1,2}[-/.](?:19|20)?\d\d(?![\w.])"),
    re.compile(rf"(?<![\w])\d{{1,2}}[- .]?{_MONTHS}[- .,]*(?:19|20)?\d\d(?![\w])", re.IGNORECASE),
    re.compile(rf"(?<![\w]){_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+(?:19|20)\d\d(?![\w])", re.IGNORECASE),
    re.compile(r"(?<![\w])(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?![\w])"),
]
_TIME_RE = re.compile(r"(?<![\w.:])[+-]?\d{1,2}:[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:\s?[AaPp]\.?[Mm]\.?)?(?![\w:])")
_NUMBER_RUN_RE = re.compile(r"(?<![\w.])\d[\d./-]*\d(?![\w])")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_PHONE_RE = re.compile(r"(?<![\w])\+?\(?\d{2,4}\)?[\s.-]\d{3,4}[\s.-]\d{3,5}(?![\w])")
_TOKEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9#\-]*[A-Za-z0-9]|[A-Za-z0-9]")
# a number with a unit, a ratio or a percentage: never an ID
_MEASURE_RE = re.compile(
    r"^[<>=+~-]?\d+(?:[.,]\d+)?(?:cm|mm|m|um|km|hz|khz|mhz|db|s|ms|us|bpm|fps|kv|kvp|mas|ma|hu|deg|x|cm/s|mm/s|"
    r"ml|l|kg|g|mg|cc)?$", re.IGNORECASE)
_ID_LABEL_RE = re.compile(
    r"(?<![A-Za-z])(?:mrn|id|pid|pat\.?\s?id|patient\s?id|acc(?:ession)?(?:\s?(?:no|nr|#))?|acc#|ssn|nhs(?:\s?no)?|"
    r"chart|case|record|study\s?id|exam\s?(?:no|#)|no\.|nr\.?|#)\s*[:#.=]?\s*([A-Za-z0-9][A-Za-z0-9\-/_.]*\d[A-Za-z0-9\-/_.]*)",
    re.IGNORECASE)
_DOB_LABEL_RE = re.compile(r"(?<![A-Za-z])(?:dob|d\.o\.b\.?|birth\s?date|born|date of birth)\s*[:=.]?\s*(\S+(?:\s\S+){0,2})",
                           re.IGNORECASE)
_NAME_LABEL_RE = re.compile(
    r"(?<![A-Za-z])(?i:name|patient|pt|pat|mr|mrs|ms|miss|mx|dr|prof|sr|sra|herr|frau|physician|ref(?:erring)?(?:\s?(?:md|dr|phys))?|"
    r"operator|tech)(?![A-Za-z])\s*[.:]?\s*((?:[A-Z][A-Za-z'\-]+|[A-Z]\.)(?:[\s^,]+(?:[A-Z][A-Za-z'\-]+|[A-Z]\.)){0,3})")
_CAP_WORD = r"[A-Z][A-Za-z'\-]*[A-Za-z]"
_INITIAL_RE = re.compile(rf"(?<![A-Za-z])([A-Z])\.\s?({_CAP_WORD})|({_CAP_WORD}),?\s([A-Z])\.(?![A-Za-z])")
_CARET_RE = re.compile(r"[A-Za-z][A-Za-z'\-]*\^[A-Za-z][A-Za-z'\-^]*")


def _id_like(token: str) -> bool:
    """Four or more digits in a token that is not a measurement; a bare number needs five (a year or a
    frame counter alone identifies nobody)."""
    digits = sum(c.isdigit() for c in token)
    if digits < 4 or (re.fullmatch(r"\d+[.,]\d+", token) and digits <= 6):  # a measurement, not 0703.1998
        return False
    if token.isdigit():
        return digits >= 5
    return not _MEASURE_RE.match(token)


def _name_pair(a: str, b: str, comma: bool) -> bool:
    """Two capitalised words that read as a person's name."""
    la, lb = a.lower(), b.lower()
    dom = L.domain_words()
    if la in dom and lb in dom:
        return False
    ga, gb, sa, sb = L.is_given_name(a), L.is_given_name(b), L.is_surname(a), L.is_surname(b)
    ca, cb = L.is_common_word(a), L.is_common_word(b)
    if comma:  # "FAMILY, Given" (or "FAMILY.Given" as OCR reads it)
        if la in dom or lb in dom:
            return False
        return (gb and (sa or not ca)) or (sa and not cb) or (a.isupper() and len(a) >= 3 and not b.isupper()
                                                               and not (ca and cb))
    if ga and (sb or not cb) and lb not in dom:  # "Given Family"
        return True
    if sa and gb and not (ca and cb) and la not in dom:  # "FAMILY GIVEN" as devices print it
        return True
    # two uncommon words that both are census names
    if (ga or sa) and (gb or sb) and not ca and not cb:
        return True
    # two rare capitalised words (neither English nor domain): a name the census lists do not know
    return (len(a) >= 4 and len(b) >= 4 and la not in dom and lb not in dom
            and L.zipf(a) < RARE_ZIPF and L.zipf(b) < RARE_ZIPF)


def find_phi(text: str, known: KnownValues | None = None, *, names: bool = True) -> list[Finding]:
    """Every identifier-looking span of ``text`` (overlapping spans merged, longest kind kept)."""
    if not text:
        return []
    found: list[Finding] = []
    if known is not None:
        for kind, pat in known.patterns().items():
            found += [Finding(kind, m.start(), m.end(), "known") for m in pat.finditer(text)]
    for rx in _DATE_RES:
        found += [Finding("date", m.start(), m.end(), "pattern") for m in rx.finditer(text)]
    found += [Finding("time", m.start(), m.end(), "pattern") for m in _TIME_RE.finditer(text)]
    found += [Finding("contact", m.start(), m.end(), "pattern") for m in _EMAIL_RE.finditer(text)]
    found += [Finding("contact", m.start(), m.end(), "pattern") for m in _PHONE_RE.finditer(text)]
    for m in _TOKEN_RE.finditer(text):
        if _id_like(m.group(0)):
            found.append(Finding("id", m.start(), m.end(), "pattern"))
    for m in _NUMBER_RUN_RE.finditer(text):  # 0703.1998, 1.2.840.113619: seven digits or more with separators
        if sum(c.isdigit() for c in m.group(0)) >= 7:
            found.append(Finding("id", m.start(), m.end(), "pattern"))
    for m in _ID_LABEL_RE.finditer(text):
        found.append(Finding("id", m.start(1), m.end(1), "label"))
    for m in _DOB_LABEL_RE.finditer(text):
        found.append(Finding("date", m.start(1), m.end(1), "label"))
    for m in re.finditer(r"[A-Za-z]+", text):
        if m.group(0).lower() in _INSTITUTION_WORDS:
            span = _institution_span(text, m.start(), m.end())
            if span:
                found.append(Finding("institution", span[0], span[1], "pattern"))
    if names:
        found += _name_findings(text)
    return _merge(found)


def _institution_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The run of capitalised words around an institution keyword, when it holds another proper word."""
    words = list(re.finditer(r"[A-Za-z][A-Za-z'&.\-]*", text))
    idx = next((i for i, w in enumerate(words) if w.start() <= start < w.end()), None)
    if idx is None:
        return None
    lo = hi = idx
    while lo > 0 and words[lo - 1].group(0)[0].isupper() and _gap_ok(text, words[lo - 1].end(), words[lo].start()):
        lo -= 1
    while hi + 1 < len(words) and words[hi + 1].group(0)[0].isupper() and _gap_ok(text, words[hi].end(), words[hi + 1].start()):
        hi += 1
    others = [w.group(0) for w in words[lo:hi + 1] if w.group(0).lower().strip(".") not in _INSTITUTION_WORDS]
    proper = [w for w in others if w.lower() not in L.domain_words() and w.lower() not in {"of", "the", "and", "for"}]
    if not proper:
        return None
    return words[lo].start(), words[hi].end()


def _gap_ok(text: str, a: int, b: int) -> bool:
    return b - a <= 2 and text[a:b].strip() in ("", "-", "&")


def _name_findings(text: str) -> list[Finding]:
    out = [Finding("person_name", m.start(), m.end(), "name") for m in _CARET_RE.finditer(text)]
    for m in _NAME_LABEL_RE.finditer(text):
        group = m.group(1)
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z'\-]*", group)]
        # a label followed by ordinary words ("Patient Position", "Name of the study") is not a name
        first = words[0] if words else ""
        if first and not _is_domain(first) and (not L.is_common_word(first) or L.is_name_word(first)):
            out.append(Finding("person_name", m.start(1), m.end(1), "label"))
    for m in _overlapping_pairs(text):
        a, sep, b = m
        if _name_pair(a[0], b[0], "," in sep[0]) or (sep[0] == "^"):
            out.append(Finding("person_name", a[1], b[2], "name"))
    for m in _INITIAL_RE.finditer(text):
        word = m.group(2) or m.group(3)
        if word and (L.is_surname(word) or not L.is_common_word(word)) and not _is_domain(word):
            out.append(Finding("person_name", m.start(), m.end(), "name"))
    return out


def _is_domain(word: str) -> bool:
    return word.lower() in L.domain_words()


def _overlapping_pairs(text: str):
    """Consecutive capitalised word pairs, overlapping ("Mary Ann Smith" gives two pairs)."""
    words = list(re.finditer(_CAP_WORD, text))
    for w1, w2 in zip(words, words[1:]):
        gap = text[w1.end():w2.start()]
        if not re.fullmatch(r",?\s+|\^|,", gap):
            continue
        if w1.start() > 0 and text[w1.start() - 1].isalpha():
            continue
        yield (w1.group(0), w1.start(), w1.end()), (gap,), (w2.group(0), w2.start(), w2.end())


def _merge(found: list[Finding]) -> list[Finding]:
    if not found:
        return []
    order = {k: i for i, k in enumerate(KINDS)}
    found.sort(key=lambda f: (f.start, -(f.end - f.start), order.get(f.kind, 99)))
    out: list[Finding] = []
    for f in found:
        if out and f.start < out[-1].end:
            last = out[-1]
            if f.end > last.end:
                out[-1] = Finding(last.kind, last.start, f.end, last.rule)
            continue
        out.append(f)
    return out


def redact_text(text: str | None, known: KnownValues | None = None, *, names: bool = True) -> tuple[str | None, list[Finding]]:
    """``text`` with every finding replaced by ``[kind]`` (e.g. "[person name]"), and the findings."""
    if not text:
        return text, []
    findings = find_phi(text, known, names=names)
    if not findings:
        return text, []
    parts, pos = [], 0
    for f in findings:
        parts.append(text[pos:f.start])
        parts.append(f"[{KIND_WORDS.get(f.kind, f.kind)}]")
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts), findings


def kinds_of(findings: Iterable[Finding]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in findings:
        out[f.kind] = out.get(f.kind, 0) + 1
    return dict(sorted(out.items()))
