"""Synthetic images with burned-in identifiers, and clean ones with harmless overlays, with their truth.

Used three ways: the demo's ``burned_in`` source (a folder of PNGs), the pixel de-identification
tests, and ``benchmarks/bench_deid.py`` (recall of PHI-bearing images, clean images unchanged, time).

Every identifier is invented here: names are drawn from lists written for this module (a third of
them absent from the US Census lists the detector uses, so the structural rules -- ``^``, labels,
"FAMILY, Given" -- are measured too), IDs and dates from a seeded generator. Text is drawn with the
TrueType fonts that ship inside matplotlib (DejaVu Sans/Serif/Mono, STIX, Computer Modern) at 9-26
px, in white, grey, yellow, green or black, on greyscale and RGB backgrounds (phantom CT slices,
ultrasound-like speckle, scikit-image's retina and Shepp-Logan images), at the corners, edges and
centre, with contrast from strong to faint.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GIVEN = ("James", "Maria", "Robert", "Linda", "Ahmed", "Yuki", "Olga", "Pedro", "Grace", "Samuel", "Fatima",
         "Chen", "Ingrid", "Tomasz", "Aisha", "Lucia", "Dmitri", "Nadia", "Oskar", "Priya",
         "Talia", "Bexley", "Quenby", "Ysolde", "Corwin", "Maelis", "Brannoc", "Idony")
FAMILY = ("Hopper", "Garcia", "Okafor", "Nakamura", "Kowalski", "Lindqvist", "Moreau", "Haddad", "Petrov",
          "Schneider", "Oyelaran", "Delacroix", "Brennan", "Castellano", "Varga", "Mbeki",
          "Zorvik", "Quellmar", "Strathorn", "Vantrell", "Oddleif", "Pruchna", "Kelberg", "Marrowby")
INSTITUTIONS = ("ST MARY HOSPITAL", "Lakeside Imaging Center", "NORTHGATE MED CTR", "Riverside Clinic",
                "UNIV HOSP KELBERG", "Harbour View Medical Centre")
OVERLAYS = ("L", "R", "5 cm", "10", "C5-1", "D 12.0cm", "FR 30Hz", "TIS 0.4", "MI 0.8", "LIVER", "TRANS", "SAG",
            "PWR", "Gn 52", "12MHz", "LT KIDNEY", "ANT", "100%", "2.5", "AP", "PORTABLE")

FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf", "STIXGeneral.ttf",
              "cmtt10.ttf", "DejaVuSansMono-Bold.ttf")


@functools.lru_cache(maxsize=64)
def _font(name: str, size: int):
    import matplotlib
    from PIL import ImageFont

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)


@dataclass
class Planted:
    text: str
    kind: str  # person_name | id | date | time | institution | overlay
    box: tuple[int, int, int, int]


@dataclass
class SyntheticImage:
    name: str
    image: np.ndarray  # uint8 HxW or HxWx3
    planted: list[Planted] = field(default_factory=list)
    header_values: list[str] = field(default_factory=list)  # what a DICOM header would have said ([] = none)
    background: str = ""  # what the picture under the text shows: one of BACKGROUNDS

    @property
    def has_phi(self) -> bool:
        return any(p.kind != "overlay" for p in self.planted)

    @property
    def phi_texts(self) -> list[str]:
        return [p.text for p in self.planted if p.kind != "overlay"]


# What each background shows, as the demo's labels CSV states it: (modality, organ, labels). Shepp-Logan is
# scikit-image's head phantom; the film background is a noisy gradient (a scanned film with no anatomy), so
# it has no truthful medical label and the demo source leaves it out.
BACKGROUNDS = {"ct": ("CT", "abdomen", ""), "us": ("US", "", ""), "skimage": ("", "", ""), "film": ("OT", "", "")}
SKIMAGE_LABELS = {True: ("FUNDUS", "eye", ""), False: ("CT", "head", "phantom")}  # by rgb: retina, Shepp-Logan


def _background(rng: random.Random, size: int, rgb: bool, allowed: tuple[str, ...] = tuple(BACKGROUNDS)) -> tuple[np.ndarray, str]:
    kinds = tuple(BACKGROUNDS)
    choice = kinds.index(rng.choice(allowed))  # with every kind allowed, the draw equals randrange(4)
    nprng = np.random.default_rng(rng.randrange(2**31))
    if choice == 0:
        from medtrinity_assets.demo.phantom import make_phantom
        from medtrinity_assets.preprocess.windowing import apply_window, ct_window

        p = _phantom(rng.randrange(4))
        z = p.volume_hu.shape[0] // 2
        img = apply_window(p.volume_hu[z], ct_window("abdomen"))
        del make_phantom
    elif choice == 1:  # ultrasound-like: a sector of speckle on black
        yy, xx = np.mgrid[0:size, 0:size]
        ang = np.arctan2(xx - size / 2, yy + size * 0.1)
        r = np.hypot(xx - size / 2, yy + size * 0.1)
        sector = (np.abs(ang) < 0.6) & (r > size * 0.15) & (r < size * 1.0)
        speckle = nprng.rayleigh(40, (size, size))
        img = np.where(sector, np.clip(speckle, 0, 255), 0).astype(np.uint8)
    elif choice == 2:
        from skimage import data as skdata

        img = skdata.retina()[::3, ::3] if rgb else np.clip(skdata.shepp_logan_phantom() * 255, 0, 255).astype(np.uint8)
    else:  # smooth gradient with noise (a scanned film, an endoscopy frame)
        g = np.linspace(30, 200, size)[None, :] + np.linspace(0, 40, size)[:, None]
        img = np.clip(g + nprng.normal(0, 12, (size, size)), 0, 255).astype(np.uint8)
    from PIL import Image

    im = Image.fromarray(np.asarray(img, dtype=np.uint8)).resize((size, size))
    im = im.convert("RGB") if rgb else im.convert("L")
    if rgb and choice != 2:  # tint so colour channels differ
        arr = np.asarray(im).astype(np.float32) * np.array([1.0, 0.85, 0.7], dtype=np.float32)
        return np.clip(arr, 0, 255).astype(np.uint8), kinds[choice]
    return np.asarray(im).copy(), kinds[choice]


@functools.lru_cache(maxsize=4)
def _phantom(i: int):
    from medtrinity_assets.demo.phantom import make_phantom

    return make_phantom(0, 500 + i)


def _date(rng: random.Random) -> str:
    y, m, d = rng.randrange(1935, 2024), rng.randrange(1, 13), rng.randrange(1, 29)
    mon = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")[m - 1]
    return rng.choice([f"{y}-{m:02d}-{d:02d}", f"{m:02d}/{d:02d}/{y}", f"{d:02d}.{m:02d}.{y}", f"{d:02d}-{mon}-{y}",
                       f"DOB: {d:02d}/{m:02d}/{y}", f"{y}{m:02d}{d:02d}"])


def _id(rng: random.Random) -> str:
    n = rng.randrange(10**6, 10**8)
    return rng.choice([f"MRN {n}", f"ID: {n}", f"PID-{n % 10000:04d}-{n // 10000 % 10000:04d}", f"A{n}",
                       f"Acc# {n}", f"{n % 1000:03d}-{n // 1000 % 100:02d}-{n // 100000 % 10000:04d}", f"{n}"])


def _name(rng: random.Random) -> tuple[str, str, str]:
    g, f = rng.choice(GIVEN), rng.choice(FAMILY)
    text = rng.choice([f"{f.upper()}^{g.upper()}", f"{g} {f}", f"{f.upper()}, {g}", f"Name: {f} {g}",
                       f"{g[0]}. {f}", f"Patient: {g} {f}", f"{f.upper()} {g.upper()}", f"{f}^{g}"])
    return text, g, f


def _colour(rng: random.Random, rgb: bool, strong: bool):
    if rgb:
        return rng.choice([(255, 255, 255), (255, 255, 0), (0, 255, 0), (255, 180, 0), (180, 180, 180)] if strong
                          else [(140, 140, 140), (120, 120, 60), (90, 160, 90)])
    return rng.choice([255, 230, 0] if strong else [150, 120, 90])


def _place(rng: random.Random, size: int, tw: int, th: int, taken: list) -> tuple[int, int] | None:
    for _ in range(40):
        where = rng.choice(["tl", "tr", "bl", "br", "top", "bottom", "centre", "left", "right", "any"])
        m = rng.randrange(2, 12)
        x = {"tl": m, "bl": m, "left": m, "tr": size - tw - m, "br": size - tw - m, "right": size - tw - m}.get(
            where, rng.randrange(0, max(1, size - tw)))
        y = {"tl": m, "tr": m, "top": m, "bl": size - th - m, "br": size - th - m, "bottom": size - th - m}.get(
            where, rng.randrange(0, max(1, size - th)))
        if x < 0 or y < 0 or x + tw > size or y + th > size:
            continue
        box = (x, y, x + tw, y + th)
        if all(box[2] < t[0] - 4 or box[0] > t[2] + 4 or box[3] < t[1] - 4 or box[1] > t[3] + 4 for t in taken):
            return x, y
    return None


def _draw(img: np.ndarray, rng: random.Random, text: str, kind: str, taken: list, rgb: bool, strong: bool,
          size_px: int | None = None) -> Planted | None:
    from PIL import Image, ImageDraw

    size = img.shape[0]
    font = _font(rng.choice(FONT_FILES), size_px or rng.randrange(10, 27))
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    pos = _place(rng, size, x1 - x0, y1 - y0, taken)
    if pos is None:
        return None
    draw.text((pos[0] - x0, pos[1] - y0), text, font=font, fill=_colour(rng, rgb, strong))
    img[...] = np.asarray(pil)
    box = (pos[0], pos[1], pos[0] + x1 - x0, pos[1] + y1 - y0)
    taken.append(box)
    return Planted(text, kind, box)


def make_set(n_phi: int = 60, n_clean: int = 50, *, seed: int = 14, size: int = 384,
             backgrounds: tuple[str, ...] = tuple(BACKGROUNDS)) -> list[SyntheticImage]:
    """``n_phi`` images with 1-4 burned-in identifiers (plus overlays on some) and ``n_clean`` without
    any (half of them with harmless overlays); half greyscale, half RGB; half with header values; each on
    one of ``backgrounds`` (keys of ``BACKGROUNDS``)."""
    rng = random.Random(seed)
    out: list[SyntheticImage] = []
    for i in range(n_phi + n_clean):
        phi = i < n_phi
        rgb = i % 2 == 1
        img, background = _background(rng, size, rgb, backgrounds)
        taken: list = []
        planted: list[Planted] = []
        headers: list[str] = []
        if phi:
            strong = rng.random() > 0.25
            kinds = rng.sample(["name", "id", "date", "institution", "time"], rng.randrange(1, 5))
            for k in kinds:
                if k == "name":
                    text, g, f = _name(rng)
                    if rng.random() < 0.5:
                        headers.append(f"{f.upper()}^{g.upper()}")
                    p = _draw(img, rng, text, "person_name", taken, rgb, strong)
                elif k == "id":
                    text = _id(rng)
                    p = _draw(img, rng, text, "id", taken, rgb, strong)
                elif k == "date":
                    p = _draw(img, rng, _date(rng), "date", taken, rgb, strong)
                elif k == "time":
                    p = _draw(img, rng, f"{rng.randrange(0, 24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}",
                              "time", taken, rgb, strong)
                else:
                    inst = rng.choice(INSTITUTIONS)
                    if rng.random() < 0.5:
                        headers.append(inst)
                    p = _draw(img, rng, inst, "institution", taken, rgb, strong)
                if p:
                    planted.append(p)
        if not phi and i % 2 == 0 or phi and rng.random() < 0.4:
            for text in rng.sample(OVERLAYS, rng.randrange(1, 4)):
                p = _draw(img, rng, text, "overlay", taken, rgb, True)
                if p:
                    planted.append(p)
            if rng.random() < 0.5:  # a scale bar with ticks
                y = size - 20
                img[y:y + 2, 20:120] = 255 if not rgb else (255, 255, 255)
                for x in range(20, 121, 25):
                    img[y - 5:y + 2, x:x + 2] = 255 if not rgb else (255, 255, 255)
        if phi and not any(p.kind != "overlay" for p in planted):  # nothing fitted: force one ID top-left
            planted.append(_draw(img, rng, _id(rng), "id", taken, rgb, True, size_px=16) or Planted("", "id", (0, 0, 0, 0)))
        out.append(SyntheticImage(name=f"{'phi' if phi else 'clean'}_{i:03d}", image=img, planted=planted,
                                  header_values=headers, background=background))
    return out


def write_source(folder: Path, n_phi: int = 8, n_clean: int = 4, seed: int = 1414) -> list[SyntheticImage]:
    """The demo's ``burned_in`` image-folder source: PNGs + a labels CSV (the truth stays in memory)."""
    from medtrinity_assets.preprocess.encode import encode_png

    images = make_set(n_phi, n_clean, seed=seed, size=384, backgrounds=("ct", "us", "skimage"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["filename,modality,organ,labels,subject"]
    for k, s in enumerate(images):
        name = f"screen_{k:02d}.png"
        (folder / name).write_bytes(encode_png(s.image))
        modality, organ, labels = SKIMAGE_LABELS[s.image.ndim == 3] if s.background == "skimage" else BACKGROUNDS[s.background]
        rows.append(f"{name},{modality},{organ},{labels},case{k:02d}")  # the subject is not the file name (the reader scrubs it from paths)
    (folder / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return images
