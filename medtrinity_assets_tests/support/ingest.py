"""Small real sources for ingest and end-to-end tests: phantom NIfTI volumes with label maps, PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml


def write_small_sources(root: Path, *, n_volumes: int = 2, shards: int = 4, extra: dict | None = None) -> Path:
    """Write a NIfTI source (phantoms + label maps), an image-folder source with bad inputs, and a YAML."""
    from PIL import Image

    from medtrinity_assets.demo.phantom import make_phantom, write_label_nifti, write_nifti

    vols = root / "inputs" / "ct" / "images"
    labels = root / "inputs" / "ct" / "labels"
    vols.mkdir(parents=True)
    labels.mkdir(parents=True)
    for i in range(n_volumes):
        ph = make_phantom(seed=7, index=i, shape=(24, 64, 64))
        orient = "RAS" if i % 2 else "LPS"
        write_nifti(ph, vols / f"case_{i:03d}.nii.gz", orientation=orient)
        write_label_nifti(ph, labels / f"case_{i:03d}.nii.gz", orientation=orient)
    (vols / "broken.nii.gz").write_bytes(b"\x1f\x8b\x08\x00truncated")

    folder = root / "inputs" / "photos"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / f"img_{i}.png")
    (folder / "not_an_image.png").write_bytes(b"this is text, not a PNG")
    (folder / "labels.csv").write_text(
        "filename,modality,organ,disease\n"
        "img_0.png,DERM,skin,naevus\nimg_1.png,DERM,skin,melanoma\nimg_2.png,DERM,skin,naevus\n"
        "not_an_image.png,DERM,skin,naevus\n../../outside.png,DERM,skin,naevus\nmissing.png,DERM,skin,naevus\n"
    )
    cfg = {
        "data_root": "out",
        "shards": shards,
        "salt": "test-salt",
        "max_side": 48,
        "context_slices": 2,
        "sources": [
            {"name": "ct_phantom", "format": "nifti", "path": "inputs/ct/images", "labels": "inputs/ct/labels",
             "modality": "CT", "organ": "abdomen", "roi": "ground_truth", "licence": "CC0-1.0",
             "label_names": {1: "liver", 2: "spleen", 3: "kidney", 4: "lung", 5: "bone", 10: "liver tumour",
                             11: "liver cyst", 12: "kidney cyst", 13: "lung nodule", 14: "spleen lesion",
                             15: "hyperdense liver lesion"}},
            {"name": "photos", "format": "image_folder", "path": "inputs/photos", "labels_csv": "inputs/photos/labels.csv",
             "roi": "none", "licence": "CC0-1.0"},
        ],
        **(extra or {}),
    }
    path = root / "sources.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
