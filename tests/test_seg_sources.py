"""HC18 and MSD Hippocampus readers: real cases from the mirror, splits that never share a
group, and bad input that fails naming the file (on small hand-made mirrors)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from omegaconf import DictConfig
from PIL import Image

from meddx.data.group_splits import check_groups_disjoint, group_split
from meddx.data.hc18 import Case, load_hc18
from meddx.data.msd_hippocampus import load_hippocampus
from meddx.data.npz import SPLITS, load_npz, save_npz
from meddx.errors import DataError
from meddx.evaluation.measurements import agreement, head_circumference
from meddx.paths import Layout
from meddx.stages import acquire_images, preprocess_images

HC_CSV_HEADER = "filename,pixel size(mm),head circumference (mm)\n"


def _spec(make_cfg: Callable[..., DictConfig], dataset: str) -> DictConfig:
    return make_cfg(f"data/image={dataset}").data.image


def _pin_manifest(folder: Path, spec: DictConfig) -> None:
    """Write the folder's CHECKSUMS.md5 (every file) and pin its SHA-256 in `spec`."""
    lines = [
        f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(folder).as_posix()}"
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "CHECKSUMS.md5"
    ]
    manifest = folder / "CHECKSUMS.md5"
    manifest.write_text("\n".join(lines) + "\n")
    spec.manifest_sha256 = hashlib.sha256(manifest.read_bytes()).hexdigest()


def _hc18_mirror(root: Path, names: list[str], annotation_size: tuple[int, int] = (80, 60)) -> Path:
    """A tiny HC18 folder: 80x60 images, each head a filled ellipse; HC values arbitrary."""
    folder = root / "hc18"
    (folder / "training_set").mkdir(parents=True)
    yy, xx = np.mgrid[:60, :80]
    head = (((yy - 30) / 20) ** 2 + ((xx - 40) / 25) ** 2 <= 1).astype(np.uint8) * 255
    for name in names:
        Image.fromarray(head // 2).save(folder / "training_set" / name)
        annotation = np.asarray(Image.fromarray(head).resize(annotation_size))
        Image.fromarray(annotation).save(folder / "training_set" / Case(name, 1, 1).annotation)
    rows = "".join(f"{name},0.1,50.0\n" for name in names)
    (folder / "training_set_pixel_size_and_HC.csv").write_text(HC_CSV_HEADER + rows)
    return folder


HC_NAMES = [f"{i:03d}_HC.png" for i in range(10)] + ["003_2HC.png", "007_2HC.png"]


def test_hc18_real_cases_carry_masks_spacing_and_hc(make_cfg, mirror: Path) -> None:
    spec = _spec(make_cfg, "hc18")
    arrays = load_hc18(spec, mirror, limit=12)
    h, w = spec.size
    assert arrays["train_images"].shape[1:] == (h, w)
    assert arrays["train_labels"].shape == arrays["train_images"].shape
    assert set(np.unique(arrays["train_labels"])) == {0, 1}
    # about 800x540 px of 0.05-0.3 mm brought to (h, w): the mm per pixel grow accordingly
    assert np.all(arrays["train_spacing"] > 0.05 * 540 / h)
    # the resized reference masks measure within 3 mm of the annotated head circumference
    pairs = zip(arrays["train_labels"], arrays["train_spacing"], strict=True)
    hc = [head_circumference(mask, spacing) for mask, spacing in pairs]
    assert agreement(hc, arrays["train_hc_mm"])["mad"] < 3.0


def test_hc18_pregnancies_never_span_splits(make_cfg, mirror: Path) -> None:
    arrays = load_hc18(_spec(make_cfg, "hc18"), mirror, limit=30)
    groups = {s: [str(n).split("_")[0] for n in arrays[f"{s}_ids"]] for s in SPLITS}
    check_groups_disjoint(groups)
    assert sum(len(g) for g in groups.values()) == 30


def test_group_split_is_seeded_and_keeps_groups_whole() -> None:
    groups = [f"{i // 2}" for i in range(200)]  # two images per group
    first, again = group_split(groups, 0.1, 0.2, seed=3), group_split(groups, 0.1, 0.2, seed=3)
    assert all(np.array_equal(first[s], again[s]) for s in first)
    check_groups_disjoint({s: [groups[i] for i in first[s]] for s in first})
    assert len(first["test"]) == 40  # 20 of the 100 groups


def test_a_group_in_two_splits_is_leakage() -> None:
    with pytest.raises(DataError, match=r"010 \(train, test\)"):
        check_groups_disjoint({"train": ["010", "011"], "val": ["012"], "test": ["010"]})


def test_hc18_annotation_of_another_size_names_the_file(make_cfg, tmp_path: Path) -> None:
    spec = _spec(make_cfg, "hc18")
    _pin_manifest(_hc18_mirror(tmp_path / "m", HC_NAMES, annotation_size=(81, 60)), spec)
    with pytest.raises(DataError, match=r"_HC_Annotation.png is 81x60 px but its image"):
        load_hc18(spec, tmp_path / "m")


def test_hc18_image_without_annotation_names_the_file(make_cfg, tmp_path: Path) -> None:
    spec = _spec(make_cfg, "hc18")
    folder = _hc18_mirror(tmp_path / "m", HC_NAMES)
    (folder / "training_set" / "005_HC_Annotation.png").unlink()
    _pin_manifest(folder, spec)
    with pytest.raises(DataError, match=r"005_HC.png has no annotation"):
        load_hc18(spec, tmp_path / "m")


def test_hc18_file_changed_after_its_manifest_is_refused(make_cfg, tmp_path: Path) -> None:
    spec = _spec(make_cfg, "hc18")
    folder = _hc18_mirror(tmp_path / "m", HC_NAMES)
    _pin_manifest(folder, spec)
    Image.fromarray(np.zeros((60, 80), np.uint8)).save(folder / "training_set" / "004_HC.png")
    with pytest.raises(DataError, match=r"004_HC.png: checksum mismatch"):
        load_hc18(spec, tmp_path / "m")


def test_no_mirror_is_an_error_that_says_how_to_set_one(make_cfg) -> None:
    with pytest.raises(DataError, match="MEDDX_DATA_MIRROR"):
        load_hc18(_spec(make_cfg, "hc18"), None)


def test_hippocampus_real_cases_keep_labels_and_spacing(make_cfg, mirror: Path) -> None:
    spec = _spec(make_cfg, "msd_hippocampus")
    arrays = load_hippocampus(spec, mirror, limit=10)
    assert arrays["train_images"].shape[1:] == tuple(spec.size)
    assert arrays["train_images"].dtype == np.uint8
    assert set(np.unique(arrays["train_labels"])) == {0, 1, 2}
    assert np.array_equal(arrays["test_spacing"], np.ones((len(arrays["test_ids"]), 3)))
    assert len(arrays["test_ids"]) == 2 and len(arrays["val_ids"]) == 1


def _hippocampus_mirror(root: Path, spec: DictConfig, n: int = 10, **bad: object) -> Path:
    """A tiny MSD folder of `n` 12x14x10 cases; `bad` spoils case 003 (nan=, affine=)."""
    folder = root / "msd_hippocampus"
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        name = f"hippocampus_{i:03d}.nii.gz"
        image = rng.random((12, 14, 10)).astype(np.float32)
        label = np.zeros((12, 14, 10), np.uint8)
        label[4:8, 4:7, 3:6], label[4:8, 7:10, 3:6] = 1, 2
        label_affine = np.eye(4)
        if i == 3 and bad.get("nan"):
            image[0, 0, 0] = np.nan
        if i == 3 and bad.get("affine"):
            label_affine[0, 3] = 5.0
        nib.save(nib.Nifti1Image(image, np.eye(4)), folder / "imagesTr" / name)
        nib.save(nib.Nifti1Image(label, label_affine), folder / "labelsTr" / name)
    _pin_manifest(folder, spec)
    return root


def test_hippocampus_nan_voxels_name_the_file(make_cfg, tmp_path: Path) -> None:
    spec = _spec(make_cfg, "msd_hippocampus")
    root = _hippocampus_mirror(tmp_path, spec, nan=True)
    with pytest.raises(DataError, match=r"imagesTr/hippocampus_003.nii.gz holds 1 NaN"):
        load_hippocampus(spec, root)


def test_hippocampus_label_off_its_image_names_the_file(make_cfg, tmp_path: Path) -> None:
    spec = _spec(make_cfg, "msd_hippocampus")
    root = _hippocampus_mirror(tmp_path, spec, affine=True)
    with pytest.raises(DataError, match=r"labelsTr/hippocampus_003.nii.gz: its affine differs"):
        load_hippocampus(spec, root)


def test_hippocampus_size_that_would_cut_labels_is_refused(make_cfg, tmp_path: Path) -> None:
    spec = _spec(make_cfg, "msd_hippocampus")
    root = _hippocampus_mirror(tmp_path, spec)
    spec.size = [12, 4, 10]  # narrower than the labelled voxels (H 4..9)
    with pytest.raises(DataError, match=r"hippocampus_\d+.nii.gz: its shape .* without cutting"):
        load_hippocampus(spec, root)


def test_hippocampus_image_without_label_names_the_file(make_cfg, tmp_path: Path) -> None:
    spec = _spec(make_cfg, "msd_hippocampus")
    root = _hippocampus_mirror(tmp_path, spec)
    (root / "msd_hippocampus" / "labelsTr" / "hippocampus_006.nii.gz").unlink()
    _pin_manifest(root / "msd_hippocampus", spec)
    with pytest.raises(DataError, match=r"hippocampus_006.nii.gz has no label"):
        load_hippocampus(spec, root)


def test_preprocess_carries_the_per_case_facts_in_split_order(make_cfg) -> None:
    cfg = make_cfg("data.image.synthetic.train=20", "data.image.synthetic.val=10")
    acquire_images.run(cfg)
    layout = Layout.of(cfg)
    raw = load_npz(layout.raw_images)
    spacing = {
        f"{s}_spacing": np.random.default_rng(0).random((len(raw[f"{s}_images"]), 2))
        for s in SPLITS
    }
    save_npz(layout.raw_images, {**raw, **spacing})
    preprocess_images.run(cfg)
    processed = load_npz(layout.processed_images)
    assert all(np.array_equal(processed[key], value) for key, value in spacing.items())
