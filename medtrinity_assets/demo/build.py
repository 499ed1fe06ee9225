"""Build the demo sources offline: every folder ``data/sources.yaml`` points at under ``data/demo/``.

Everything comes from the project itself (the seeded phantom) or from real files that ship inside
installed packages (pydicom, pydicom-data, nibabel, scikit-image), so ``medtrinity demo`` works on
a machine without internet. Each folder is rebuilt in a temporary sibling and swapped in, so a
rerun gives the same files and an interrupted run never leaves half a folder behind.

What goes where (paths relative to ``dest``)::

    phantom_ct/images/*.nii.gz  phantom_ct/labels/*.nii.gz  phantom_ct/labels.csv  phantom_ct/truth.json
    phantom_msd/dataset.json  imagesTr/  labelsTr/  truth.json
    phantom_unlabelled/images/*.nii.gz  truth.json      phantom_masks/*.nii.gz + labels.json (precomputed masks)
    phantom_dicom/study_XX/...  (medtrinity_assets.demo.dicom_phantom)  + phantom_dicom_truth.json
    pydicom_real/patient_XX/*.dcm
    brain_mr/*.nii*
    skimage_folder/*.png + labels.csv
    coco_boxes/images/*.png + annotations.json
    captions/images/*.png + images.jsonl
    burned_in/*.png + labels.csv  screen captures with burned-in names, IDs, dates (medtrinity_assets.demo.burned_in)
    medrag_demo.jsonl
    eval_hashes.txt            perceptual hashes of two demo images (the leakage check must find them)
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medtrinity_assets.demo.phantom import LABEL_NAMES, Phantom, make_phantom, write_label_nifti, write_nifti
from medtrinity_assets.preprocess.encode import encode_png
from medtrinity_assets.preprocess.windowing import apply_window, ct_window

DEMO_SEED = 0
MSD_INDICES = range(100, 104)
DICOM_INDICES = range(200, 203)
DICOM_ORIENTATIONS = ("LPS", "RAS", "LPI")
COCO_INDICES = range(300, 306)
CAPTION_INDICES = (400, 401)
# must match data/sources.yaml (max_side, context_slices) so the eval hashes equal the pipeline's
PIPELINE_MAX_SIDE = 512
PIPELINE_CONTEXT = 3

# (patient folder, pydicom test file): one real file per 'patient'; the SEG object is not an image
PYDICOM_FILES = (
    ("patient_01", "CT_small.dcm"),
    ("patient_02", "693_J2KR.dcm"),
    ("patient_03", "MR_small.dcm"),
    ("patient_04", "emri_small.dcm"),
    ("patient_05", "MR2_J2KR.dcm"),
    ("patient_06", "RG1_J2KR.dcm"),
    ("patient_07", "RG3_J2KR.dcm"),
    ("patient_08", "US1_J2KR.dcm"),
)
NIBABEL_FILES = ("anatomical.nii", "example4d.nii.gz", "functional.nii")


# ------------------------------------------------------------------ helpers


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


def _rebuild(dest: Path, name: str, fill: Callable[[Path], None]) -> Path:
    """Fill ``dest/name`` via a temporary sibling, then swap it in (old content removed)."""
    final = dest / name
    tmp = dest / f".{name}.building.{os.getpid()}"  # per process: two concurrent builds never share one
    old = dest / f".{name}.old.{os.getpid()}"
    for p in (tmp, old):
        if p.exists():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    return final


def _csv_text(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _truth(p: Phantom, **extra: Any) -> dict[str, Any]:
    lesions = [{**les, "slice_areas_px": {str(k): v for k, v in les["slice_areas_px"].items()}} for les in p.lesions]
    return {"seed": p.seed, "index": p.index, "subject": p.subject_id, "shape": list(p.shape),
            "spacing": list(p.spacing), "lesions": lesions, **extra}


def render_slice(p: Phantom, z: int, preset: str) -> np.ndarray:
    """8-bit display of slice ``z`` with a CT preset (what a PACS screenshot would hold)."""
    return apply_window(p.volume_hu[z], ct_window(preset))


def _labels_of(p: Phantom) -> str:
    return ";".join(les["name"] for les in p.lesions)


# ------------------------------------------------------------------ sources


def _phantom_ct(folder: Path, n_phantoms: int) -> None:
    rows, truth = [], []
    for i in range(n_phantoms):
        p = make_phantom(DEMO_SEED, i)
        orientation = "RAS" if i % 2 else "LPS"
        name = f"ct_{i:03d}.nii.gz"  # not the subject id: the reader scrubs subject ids out of paths
        write_nifti(p, folder / "images" / name, orientation=orientation)
        write_label_nifti(p, folder / "labels" / name, orientation=orientation)
        rows.append([name, p.subject_id, _labels_of(p), "CT", "abdomen"])
        truth.append(_truth(p, file=f"images/{name}", orientation=orientation))
    _write_text(folder / "labels.csv", _csv_text(["filename", "subject", "findings", "modality", "organ"], rows))
    _write_text(folder / "truth.json", json.dumps(truth, indent=1) + "\n")


UNLABELLED_INDICES = (100, 101, 102, 103)


def _phantom_unlabelled(folder: Path) -> None:
    """Phantoms shipped without label maps: the demo's `roi: expert` CT source, where the built-in
    anatomy expert and the trained lesion model find the regions (truth kept aside for checking)."""
    truth = []
    for i in UNLABELLED_INDICES:
        p = make_phantom(DEMO_SEED, i)
        orientation = "RAS" if i % 2 else "LPS"
        name = f"unlabelled_{i:03d}.nii.gz"
        write_nifti(p, folder / "images" / name, orientation=orientation)
        truth.append(_truth(p, file=f"images/{name}", orientation=orientation))
    _write_text(folder / "truth.json", json.dumps(truth, indent=1) + "\n")


def _phantom_masks(folder: Path) -> None:
    """Precomputed expert masks for the unlabelled phantoms, laid out as nnU-Net / MONAI Label write them
    (one multi-label NIfTI per volume, same file name) with their label map: they stand in for a
    segmentation model run elsewhere (here: the phantoms' own label maps -- synthetic, and said so)."""
    for i in UNLABELLED_INDICES:
        p = make_phantom(DEMO_SEED, i)
        orientation = "RAS" if i % 2 else "LPS"
        write_label_nifti(p, folder / f"unlabelled_{i:03d}.nii.gz", orientation=orientation)
    _write_text(folder / "labels.json", json.dumps({str(k): v for k, v in sorted(LABEL_NAMES.items())}, indent=1) + "\n")


def _phantom_msd(folder: Path) -> None:
    training, truth = [], []
    for i in MSD_INDICES:
        p = make_phantom(DEMO_SEED, i)
        orientation = "RAS" if i % 2 == 0 else "LPS"
        name = f"phantom_{i:03d}.nii.gz"
        write_nifti(p, folder / "imagesTr" / name, orientation=orientation)
        write_label_nifti(p, folder / "labelsTr" / name, orientation=orientation)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
        truth.append(_truth(p, file=f"imagesTr/{name}", orientation=orientation))
    doc = {
        "name": "PhantomAbdomen",
        "description": "Synthetic abdominal CT phantoms with organ and lesion labels (medtrinity demo)",
        "reference": "generated by medtrinity_assets.demo.phantom",
        "licence": "CC0-1.0",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {"0": "background", **{str(k): v for k, v in sorted(LABEL_NAMES.items())}},
        "numTraining": len(training),
        "numTest": 0,
        "training": training,
        "test": [],
    }
    _write_text(folder / "dataset.json", json.dumps(doc, indent=1) + "\n")
    _write_text(folder / "truth.json", json.dumps(truth, indent=1) + "\n")


def _phantom_dicom(folder: Path) -> list[dict[str, Any]] | None:
    """Delegate to the DICOM writer (its own module); the truth per study, None when it is missing.

    The truth goes next to the folder, not in it: the DICOM reader would quarantine a JSON file."""
    try:
        from medtrinity_assets.demo.dicom_phantom import write_phantom_dicom
    except ImportError:
        warnings.warn("medtrinity_assets.demo.dicom_phantom is missing: source phantom_dicom is left empty",
                      stacklevel=2)
        return None
    truth = []
    # one synthetic patient per phantom; stored slice orders differ so the reader's sorting is exercised
    for k, (i, orientation) in enumerate(zip(DICOM_INDICES, DICOM_ORIENTATIONS)):
        p = make_phantom(DEMO_SEED, i)
        write_phantom_dicom(p, folder / f"study_{k + 1:02d}", patient_id=f"PID-0042-{7731 + k}",
                                      orientation=orientation)
        truth.append(_truth(p, folder=f"study_{k + 1:02d}", orientation=orientation))
    return truth


def _pydicom_real(folder: Path) -> None:
    from pydicom.data import get_testdata_file

    missing = []
    for patient, name in PYDICOM_FILES:
        src = get_testdata_file(name, download=False)  # never reach for the network
        if src is None:
            missing.append(name)
            continue
        target = folder / patient / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    if missing:
        warnings.warn(f"pydicom test files not installed (install pydicom-data): {missing}", stacklevel=2)


def _brain_mr(folder: Path) -> None:
    from nibabel.testing import data_path

    for name in NIBABEL_FILES:
        shutil.copyfile(Path(data_path) / name, folder / name)


def _skimage_folder(folder: Path) -> None:
    from skimage import data as skdata

    shepp = np.clip(np.rint(skdata.shepp_logan_phantom() * 255), 0, 255).astype(np.uint8)
    images = {
        "retina.png": skdata.retina(),
        "immunohistochemistry.png": skdata.immunohistochemistry(),
        "shepp_logan_phantom.png": shepp,
    }
    for name, arr in images.items():
        _write_bytes(folder / name, encode_png(arr))
    rows = [
        ["retina.png", "FUNDUS", "eye", "", "normal fundus", "skimage_retina"],
        ["immunohistochemistry.png", "HISTOLOGY", "colon", "", "IHC stain", "skimage_ihc"],
        ["shepp_logan_phantom.png", "CT", "head", "", "phantom", "shepp_logan"],
    ]
    _write_text(folder / "labels.csv",
                _csv_text(["filename", "modality", "organ", "disease", "labels", "subject"], rows))


def _lesion_boxes(p: Phantom, z: int) -> list[tuple[int, list[float]]]:
    out = []
    for les in p.lesions:
        ys, xs = np.nonzero(p.label_map[z] == les["label"])
        if len(ys):
            x0, y0 = float(xs.min()), float(ys.min())
            out.append((les["label"], [x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0]))
    return out


def _coco_boxes(folder: Path) -> None:
    images, anns = [], []
    categories = [{"id": k, "name": v, "supercategory": "lesion"} for k, v in sorted(LABEL_NAMES.items()) if k >= 10]
    for i in COCO_INDICES:
        p = make_phantom(DEMO_SEED, i)
        les = p.lesions[0]
        z = les["centre_voxel"][0]
        preset = "lung" if les["organ"] == "lung" else "abdomen"
        name = f"{p.subject_id}_z{z:02d}.png"
        _write_bytes(folder / "images" / name, encode_png(render_slice(p, z, preset)))
        image_id = len(images) + 1
        h, w = p.shape[1:]
        images.append({"id": image_id, "file_name": f"images/{name}", "width": w, "height": h,
                       "subject": p.subject_id, "modality": "CT"})
        for label, bbox in _lesion_boxes(p, z):
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": label, "bbox": bbox,
                         "area": bbox[2] * bbox[3], "iscrowd": 0})
    doc = {"info": {"description": "Phantom CT slices with lesion boxes (medtrinity demo)", "version": "1"},
           "licenses": [{"id": 1, "name": "CC0-1.0"}], "images": images, "annotations": anns,
           "categories": categories}
    _write_text(folder / "annotations.json", json.dumps(doc, indent=1) + "\n")


def _phantom_caption(p: Phantom, z: int) -> str:
    parts = []
    for les in p.lesions:
        if z in les["slices"]:
            size = f"{les['diameter_mm']:.0f}"
            article = "an" if size.startswith(("8", "11", "18")) else "a"
            words = [les["texture"]] + ([] if les["intensity"] in les["name"] else [les["intensity"]])
            parts.append(f"{article} {size} mm {', '.join(words)} {les['name']} on the patient's {les['side']}")
    region = "lower chest" if any(les["organ"] == "lung" and z in les["slices"] for les in p.lesions) else "upper abdomen"
    if not parts:
        return f"Axial CT of the {region} without a focal lesion on this slice."
    return f"Axial contrast-enhanced CT of the {region} showing " + " and ".join(parts) + "."


def _captions(folder: Path) -> None:
    from skimage import data as skdata

    lines = []
    for i in CAPTION_INDICES:
        p = make_phantom(DEMO_SEED, i)
        z = p.lesions[-1]["centre_voxel"][0]
        preset = "lung" if p.lesions[-1]["organ"] == "lung" else "abdomen"
        name = f"images/{p.subject_id}_z{z:02d}.png"
        _write_bytes(folder / name, encode_png(render_slice(p, z, preset)))
        lines.append({"image": name, "caption": _phantom_caption(p, z), "subject": p.subject_id,
                      "modality": "CT", "organ": "abdomen"})
    ihc = skdata.immunohistochemistry()[256:, 256:]
    _write_bytes(folder / "images/ihc_crop.png", encode_png(np.ascontiguousarray(ihc)))
    lines.append({"image": "images/ihc_crop.png", "subject": "skimage_ihc_crop", "modality": "HISTOLOGY",
                  "organ": "colon",
                  "caption": "Tissue section with brown chromogen marking the immunoreactive cells lining "
                             "the glands, blue haematoxylin counterstain on the nuclei."})
    shepp = skdata.shepp_logan_phantom()[::2, ::2]
    _write_bytes(folder / "images/shepp_logan_small.png",
                 encode_png(np.clip(np.rint(shepp * 255), 0, 255).astype(np.uint8)))
    lines.append({"image": "images/shepp_logan_small.png", "subject": "shepp_logan_small", "modality": "CT",
                  "organ": "head",
                  "caption": "Shepp-Logan head phantom: an elliptical skull outline enclosing two darker "
                             "ventricle-like ellipses and several small round inserts."})
    _write_text(folder / "images.jsonl", "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))


def _burned_in(folder: Path) -> None:
    """Screen captures with invented names, IDs, dates and institutions burned into the pixels (several
    fonts, sizes, colours, positions), and clean ones with harmless overlays: the pipeline must black out
    the first kind and leave the second untouched."""
    from medtrinity_assets.demo.burned_in import write_source

    write_source(folder)


# Short radiology passages in MedRAG form, written for this project.
MEDRAG_PASSAGES: tuple[tuple[str, str], ...] = (
    ("Hypodense liver lesions on CT",
     "A focal liver lesion that is darker than the surrounding parenchyma on portal venous CT is called hypodense. "
     "Simple cysts measure close to water (0-20 HU) and have sharp margins; metastases are often hypodense with "
     "less distinct margins and may show rim enhancement."),
    ("Simple hepatic cyst",
     "A simple hepatic cyst is a round or oval, homogeneous, water-attenuation lesion with an imperceptible wall "
     "and no enhancement. It is usually incidental and needs no follow-up when these features are all present."),
    ("Hyperdense liver lesion",
     "A liver lesion brighter than the parenchyma after contrast is hyperdense. In the arterial or portal phase, "
     "haemangiomas, focal nodular hyperplasia and hypervascular metastases can appear this way; comparison with "
     "other phases helps to tell them apart."),
    ("Heterogeneous tumour texture",
     "Heterogeneous internal attenuation in a solid lesion suggests necrosis, haemorrhage or mixed cellularity. "
     "Heterogeneity is more typical of larger malignant tumours than of benign lesions, which tend to be uniform."),
    ("Renal cyst assessment",
     "A renal lesion of water attenuation that does not enhance, with a thin smooth wall and no septa or solid "
     "parts, is a simple cyst (Bosniak I). Septa, calcification or enhancing nodules raise the category and the "
     "need for follow-up."),
    ("Splenic lesions",
     "Most focal splenic lesions found incidentally are benign, such as cysts and haemangiomas. A hypodense "
     "splenic lesion in a patient with known cancer, lymphoma or infection needs correlation with the clinical "
     "history."),
    ("Solitary pulmonary nodule",
     "A pulmonary nodule is a rounded opacity up to 3 cm surrounded by lung. Size, margin and attenuation guide "
     "management: solid nodules under 6 mm in low-risk patients usually need no routine follow-up, larger ones "
     "are followed with CT or assessed further."),
    ("Nodule margins",
     "Smooth, well-defined margins favour a benign nodule, whereas lobulated or spiculated margins raise the "
     "likelihood of malignancy. Margin is judged on thin sections in a lung window."),
    ("CT window settings",
     "CT images are displayed with a window centre and width in Hounsfield units. A lung window (about -600/1500) "
     "shows airways and nodules, an abdominal window (about 50/400) separates soft tissues, and a bone window "
     "(about 400/1800) shows cortex and trabeculae."),
    ("Hounsfield units",
     "The Hounsfield scale sets water at 0 and air at -1000. Fat lies around -100, unenhanced soft tissue "
     "between 20 and 60, enhancing organs higher, and cortical bone several hundred to over a thousand."),
    ("Laterality in radiology",
     "Axial CT and MR are conventionally viewed from the feet, so the patient's right appears on the left of "
     "the screen. Reports always state findings in patient terms, such as right kidney or left lower lobe."),
    ("Lesion size reporting",
     "Lesions are measured in their longest axial diameter, in millimetres. Measurements on the same window and "
     "phase make comparisons over time reliable; a change of 20 percent or more is usually considered real."),
    ("Attenuation terms",
     "On CT, hypodense, isodense and hyperdense describe a region relative to its surroundings. On MR the "
     "matching words are hypointense, isointense and hyperintense, and the sequence must be named."),
    ("Liver anatomy on CT",
     "The liver occupies the right upper quadrant below the right hemidiaphragm and extends across the midline "
     "with the left lobe. Its normal enhanced attenuation is higher than that of the spleen on delayed images."),
    ("Kidneys on CT",
     "The kidneys lie in the retroperitoneum on either side of the spine, the right usually slightly lower than "
     "the left. In the nephrographic phase the parenchyma enhances strongly and uniformly."),
    ("Lung bases and diaphragm",
     "Upper abdominal CT includes the lung bases, where incidental nodules are commonly found. They should be "
     "reported with side, lobe and size even when the examination was aimed at the abdomen."),
    ("Multiple liver lesions",
     "Several lesions in one liver raise the question of metastatic disease, but multiple simple cysts or "
     "haemangiomas are common too. Each lesion is characterised on its own features."),
    ("Brain MR basics",
     "On T1-weighted MR, cerebrospinal fluid is dark and white matter brighter than grey matter; on T2-weighted "
     "images fluid is bright. Lesions are described by signal on each sequence and their location by lobe."),
    ("Fundus photography",
     "A colour fundus photograph shows the optic disc, the macula and the retinal vessels. Haemorrhages, exudates "
     "and microaneurysms are the typical findings of diabetic retinopathy."),
    ("Immunohistochemistry",
     "Immunohistochemistry marks a protein in tissue with an antibody and a chromogen, often brown DAB, on a "
     "haematoxylin counterstain. The pattern and intensity of staining are reported per cell compartment."),
)


def _medrag(path: Path) -> None:
    lines = [json.dumps({"id": f"medtrinity_demo_{i:03d}", "title": title, "content": content}) + "\n"
             for i, (title, content) in enumerate(MEDRAG_PASSAGES)]
    path.write_text("".join(lines), encoding="utf-8")


def _eval_hashes(dest: Path, n_phantoms: int) -> list[str]:
    """Hashes of two images exactly as the pipeline will see them: read with the real readers, then
    ``item_to_slices`` with the demo's settings, so the leakage check must flag these two samples."""
    from medtrinity_assets.config import SourceSpec
    from medtrinity_assets.formats.base import ItemRef, get_reader
    from medtrinity_assets.preprocess.item_images import item_to_slices

    hashes: list[str] = []
    # 1) the retina photograph of the image-folder source
    folder = SourceSpec(name="skimage_folder", format="image_folder", path=(dest / "skimage_folder").resolve(),
                        labels_csv=(dest / "skimage_folder" / "labels.csv").resolve(), roi="none")
    # 2) the slice through the first lesion of phantom 1 (stored RAS on disk)
    index = 1 if n_phantoms > 1 else 0
    ct = SourceSpec(name="phantom_ct", format="nifti", path=(dest / "phantom_ct" / "images").resolve(),
                    labels=(dest / "phantom_ct" / "labels").resolve(),
                    labels_csv=(dest / "phantom_ct" / "labels.csv").resolve(), modality="CT", organ="abdomen")
    target_z = make_phantom(DEMO_SEED, index).lesions[0]["centre_voxel"][0]
    for spec, wanted, z in ((folder, "retina.png", -1), (ct, f"ct_{index:03d}.nii.gz", target_z)):
        reader = get_reader(spec.format)
        refs = [r for r in reader.scan(spec) if isinstance(r, ItemRef) and wanted in json.dumps(r.locator)]
        if len(refs) != 1:
            raise RuntimeError(f"eval image {wanted} not found by the {spec.format} reader in {spec.path}")
        item = reader.load(spec, refs[0])
        slices = item_to_slices(item, max_side=PIPELINE_MAX_SIDE, context_slices=PIPELINE_CONTEXT,
                                organ=item.organ or spec.organ)
        hashes.append(next(s.phash for s in slices if s.slice_index == z))
    return hashes


# ------------------------------------------------------------------ entry point


def build_demo(dest: Path, *, n_phantoms: int = 8) -> dict[str, Any]:
    """(Re)create every demo source under ``dest`` (normally ``data/demo``); returns what was built."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    _rebuild(dest, "phantom_ct", lambda f: _phantom_ct(f, n_phantoms))
    _rebuild(dest, "phantom_msd", _phantom_msd)
    _rebuild(dest, "phantom_unlabelled", _phantom_unlabelled)
    _rebuild(dest, "phantom_masks", _phantom_masks)
    dicom_truth: list[Any] = []
    _rebuild(dest, "phantom_dicom", lambda f: dicom_truth.append(_phantom_dicom(f)))
    if dicom_truth[0] is not None:
        _write_text(dest / "phantom_dicom_truth.json", json.dumps(dicom_truth[0], indent=1) + "\n")
    _rebuild(dest, "pydicom_real", _pydicom_real)
    _rebuild(dest, "brain_mr", _brain_mr)
    _rebuild(dest, "skimage_folder", _skimage_folder)
    _rebuild(dest, "coco_boxes", _coco_boxes)
    _rebuild(dest, "captions", _captions)
    _rebuild(dest, "burned_in", _burned_in)
    _medrag(dest / "medrag_demo.jsonl")
    hashes = _eval_hashes(dest, n_phantoms)
    (dest / "eval_hashes.txt").write_text("".join(h + "\n" for h in hashes), encoding="utf-8")
    summary = {
        "dest": str(dest),
        "phantom_ct": n_phantoms,
        "phantom_msd": len(MSD_INDICES),
        "phantom_unlabelled": len(UNLABELLED_INDICES),
        "phantom_dicom": len(dicom_truth[0] or []),
        "pydicom_real": len(PYDICOM_FILES),
        "brain_mr": len(NIBABEL_FILES),
        "burned_in": len(list((dest / "burned_in").glob("*.png"))),
        "medrag_passages": len(MEDRAG_PASSAGES),
        "eval_hashes": hashes,
    }
    return summary


if __name__ == "__main__":  # python -m medtrinity_assets.demo.build [dest]
    import sys

    print(json.dumps(build_demo(Path(sys.argv[1] if len(sys.argv) > 1 else "data/demo")), indent=1))
