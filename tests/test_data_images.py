"""Real image data in, clean data out: the MedMNIST registry, acquisition and validation."""

from __future__ import annotations

import re
import shutil
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import CONF, REPO
from meddx import cli
from meddx.config import compose
from meddx.data import medmnist
from meddx.data.image_facts import STATED_FACTS, ImageFacts, image_facts
from meddx.data.npz import load_npz, save_npz
from meddx.data.stats import class_key
from meddx.data.validate import check_image_splits
from meddx.errors import ConfigError, DataError
from meddx.io import file_digest
from meddx.metrics import TASKS
from meddx.paths import Layout
from meddx.stages import acquire_images, preprocess_images

OFFICIAL = {
    "pneumoniamnist": {"train": (1214, 3494), "val": (135, 389), "test": (234, 390)},
    "breastmnist": {"train": (147, 399), "val": (21, 57), "test": (42, 114)},
}


@pytest.fixture
def no_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDDX_DATA_MIRROR", raising=False)
    monkeypatch.setenv("MEDDX_OFFLINE", "1")


def tiny_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", 12), ("val", 6), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 8, 8), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(-1, 1).astype(np.uint8)
    return arrays


# --- the registry and its configs -------------------------------------------------------


SUBSETS_2D = {
    "pathmnist",
    "chestmnist",
    "dermamnist",
    "octmnist",
    "pneumoniamnist",
    "retinamnist",
    "breastmnist",
    "bloodmnist",
    "tissuemnist",
    "organamnist",
    "organcmnist",
    "organsmnist",
}
SUBSETS_3D = {
    "organmnist3d",
    "nodulemnist3d",
    "fracturemnist3d",
    "adrenalmnist3d",
    "vesselmnist3d",
    "synapsemnist3d",
}


def test_registry_holds_every_2d_and_3d_subset_at_its_official_sizes() -> None:
    registry = medmnist.subsets()
    assert set(registry) == SUBSETS_2D | SUBSETS_3D
    for name, subset in registry.items():
        dims, sizes = (3, (28, 64)) if name in SUBSETS_3D else (2, (28, 64, 128, 224))
        assert subset.spatial_dims == dims and subset.sizes == sizes
        assert subset.task in TASKS and len(subset.class_names) >= 2
        assert all(re.fullmatch(r"[0-9a-f]{32}", subset.checksum(size)) for size in sizes)
        assert set(subset.splits) == {"train", "val", "test"}


def test_every_subset_has_a_config_that_names_its_entry_and_restates_no_fact() -> None:
    for name in medmnist.subsets():
        spec = compose([f"data/image={name}"], conf_dir=CONF).data.image
        assert spec.source == "medmnist" and spec.name == name and spec.size == 28
        assert not set(STATED_FACTS) & set(spec)
        assert image_facts(spec).class_names == medmnist.subset(name).class_names


def test_a_dataset_without_a_registry_entry_states_its_facts_in_its_config() -> None:
    spec = compose(["data/image=synthetic"], conf_dir=CONF).data.image
    assert image_facts(spec) == ImageFacts("multi-class", ("disc", "square", "ring", "cross"), 1, 2)


def test_registry_names_files_and_urls_per_size() -> None:
    breast = medmnist.subset("breastmnist")
    assert breast.file_name(28) == "breastmnist.npz"
    assert breast.file_name(224) == "breastmnist_224.npz"
    assert (
        breast.url(64) == "https://zenodo.org/records/10519652/files/breastmnist_64.npz?download=1"
    )
    assert breast.checksum(28) == "750601b1f35ba3300ea97c75c52ff8f6"
    assert medmnist.subset("chestmnist").task == "multi-label"
    assert medmnist.subset("retinamnist").task == "ordinal"
    with pytest.raises(ConfigError, match="28, 64, 128, 224"):
        breast.file_name(32)
    adrenal = medmnist.subset("adrenalmnist3d")
    assert adrenal.file_name(64) == "adrenalmnist3d_64.npz"
    with pytest.raises(ConfigError, match=r"adrenalmnist3d comes in \[28, 64\]"):
        adrenal.file_name(128)


def test_adrenalmnist3d_entry_is_the_official_one() -> None:
    adrenal = medmnist.subset("adrenalmnist3d")
    assert (adrenal.task, adrenal.class_names) == ("binary", ("normal", "hyperplasia"))
    assert adrenal.splits == {"train": 1188, "val": 98, "test": 298}
    assert adrenal.checksum(28) == "bbd3c5a5576322bc4cdfea780653b1ce"


def test_the_registry_is_package_data() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["meddx"]
    assert any(fnmatch(f"data/{medmnist.REGISTRY}", pattern) for pattern in patterns)


def test_unknown_subset_name_is_a_config_error_listing_the_known_ones(make_cfg) -> None:
    cfg = make_cfg("data/image=pneumoniamnist", "data.image.name=nosuchmnist")
    with pytest.raises(ConfigError, match=r"'nosuchmnist' is not a MedMNIST subset.*breast"):
        acquire_images.run(cfg)
    with pytest.raises(ConfigError, match="nosuchmnist"):
        compose(["data/image=nosuchmnist"], conf_dir=CONF)


def test_a_registry_fact_cannot_be_overridden_in_a_medmnist_config(make_cfg) -> None:
    with pytest.raises(ConfigError, match=r"Unknown config key 'data\.image\.channels'"):
        make_cfg("data/image=breastmnist", "data.image.channels=3")


def test_a_medmnist_config_that_restates_a_registry_fact_is_refused() -> None:
    spec = OmegaConf.create({"source": "medmnist", "name": "breastmnist", "channels": 1})
    with pytest.raises(ConfigError, match=r"data\.image\.channels is a fact of the MedMNIST"):
        image_facts(spec)


# --- acquisition: mirror, cache, checksum, offline ---------------------------------------


@pytest.mark.parametrize("name", ["pneumoniamnist", "breastmnist"])
def test_mirror_flow_gives_the_official_split_sizes(
    make_cfg, mirror: Path, tmp_path: Path, name: str
) -> None:
    cfg = make_cfg(f"data/image={name}", f"paths.mirror={mirror}")
    acquired = acquire_images.run(cfg)
    subset = medmnist.subset(name)
    assert acquired["data.origin"] == "mirror"
    assert {s: acquired[f"n_{s}"] for s in subset.splits} == subset.splits
    assert len(acquired["known_duplicates"]) == len(subset.known_duplicates[28])
    stats = preprocess_images.run(cfg)
    for split, counts in OFFICIAL[name].items():
        row = stats[split]
        assert row["n"] == subset.splits[split] == sum(counts)
        assert tuple(row[class_key(c)] for c in subset.class_names) == counts
    grids = sorted(
        path.name for path in (Layout.of(cfg).plots("preprocess_images") / "samples").iterdir()
    )
    assert len(grids) == 2 and grids[0].startswith("0_")
    assert not (tmp_path / "data" / "cache").exists()  # the mirror is read in place


def test_adrenalmnist3d_in_the_mirror_is_acquired_byte_for_byte_as_3d_volumes(
    make_cfg, mirror: Path
) -> None:
    subset = medmnist.subset("adrenalmnist3d")
    assert file_digest(mirror / "medmnist" / subset.file_name(28)) == subset.checksum(28)
    cfg = make_cfg("data/image=adrenalmnist3d", f"paths.mirror={mirror}")
    acquired = acquire_images.run(cfg)
    assert acquired["data.origin"] == "mirror" and acquired["data.md5"] == subset.checksum(28)
    assert {s: acquired[f"n_{s}"] for s in subset.splits} == subset.splits
    raw = Layout.of(cfg).raw_images
    assert file_digest(raw) == subset.checksum(28)
    assert load_npz(raw)["test_images"].shape == (298, 28, 28, 28)


def test_official_split_sizes_are_as_published() -> None:
    assert medmnist.subset("pneumoniamnist").splits == {"train": 4708, "val": 524, "test": 624}
    assert medmnist.subset("breastmnist").splits == {"train": 546, "val": 78, "test": 156}


def test_cache_is_used_first_and_a_bad_cache_entry_is_replaced_from_the_mirror(
    make_cfg, mirror: Path, tmp_path: Path, no_mirror: None
) -> None:
    cache = tmp_path / "data" / "cache"
    cache.mkdir(parents=True)
    shutil.copyfile(mirror / "medmnist" / "breastmnist.npz", cache / "breastmnist.npz")
    assert acquire_images.run(make_cfg("data/image=breastmnist"))["data.origin"] == "cache"
    (cache / "breastmnist.npz").write_bytes(b"not the official file")
    again = acquire_images.run(make_cfg("data/image=breastmnist", f"paths.mirror={mirror}"))
    assert again["data.origin"] == "mirror"
    assert not (cache / "breastmnist.npz").exists()


def test_corrupted_checksum_names_file_and_both_checksums_and_writes_nothing(
    make_cfg, tmp_path: Path
) -> None:
    fake_mirror = tmp_path / "mirror" / "medmnist"
    fake_mirror.mkdir(parents=True)
    save_npz(fake_mirror / "breastmnist.npz", tiny_arrays())
    cfg = make_cfg("data/image=breastmnist", f"paths.mirror={fake_mirror.parent}")
    with pytest.raises(DataError) as caught:
        acquire_images.run(cfg)
    message = str(caught.value)
    assert "breastmnist.npz" in message and "750601b1f35ba3300ea97c75c52ff8f6" in message
    assert re.search(r"got [0-9a-f]{32}", message)
    assert not Layout.of(cfg).raw_images.exists()


def test_offline_without_mirror_fails_clearly_with_nothing_half_written(
    tmp_path: Path,
    tracking_db: str,
    no_mirror: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MEDDX_CONF_DIR", str(CONF))
    code = cli.main(
        [
            "acquire_images",
            "data/image=pneumoniamnist",
            f"paths.root={tmp_path}",
            f"tracking.uri={tracking_db}",
            "tracking.experiment=offline",
        ]
    )
    err = capsys.readouterr().err
    assert code != 0
    assert "pneumoniamnist.npz is not available" in err
    assert "MEDDX_DATA_MIRROR" in err and "paths.mirror" in err  # way 1: a mirror
    assert str(tmp_path / "data" / "cache" / "pneumoniamnist.npz") in err  # way 2: the cache
    assert not (tmp_path / "data" / "raw").exists() and not (tmp_path / "data" / "cache").exists()


# --- validation ---------------------------------------------------------------------------


def test_truncated_npz_is_a_data_error_naming_the_file(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg()
    raw = Layout.of(cfg).raw_images
    save_npz(raw, tiny_arrays())
    raw.write_bytes(raw.read_bytes()[: raw.stat().st_size // 2])
    with pytest.raises(DataError, match=r"images\.npz is not a readable \.npz file"):
        preprocess_images.run(cfg)
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_npz(raw)


def test_nan_image_is_refused_with_its_index() -> None:
    arrays = tiny_arrays()
    arrays["val_images"] = arrays["val_images"].astype(np.float32)
    arrays["val_images"][4, 2, 3] = np.nan
    with pytest.raises(
        DataError,
        match=r"val_images holds NaN or infinite values at indices "
        r"\[4\]",
    ):
        check_image_splits(arrays, 2, "binary", 1)


def test_labels_out_of_range_are_refused_with_indices_and_values() -> None:
    arrays = tiny_arrays()
    arrays["test_labels"][[1, 5]] = 7
    with pytest.raises(
        DataError,
        match=r"test_labels holds labels outside 0\.\.1 at indices "
        r"\[1, 5\] \(values \[7\]\)",
    ):
        check_image_splits(arrays, 2, "binary", 1)


def test_image_duplicated_across_splits_is_leakage() -> None:
    arrays = tiny_arrays()
    arrays["test_images"][2] = arrays["train_images"][9]
    with pytest.raises(DataError, match=r"leakage\): train\[9\] = test\[2\]"):
        check_image_splits(arrays, 2, "binary", 1)


def test_only_the_published_duplicates_are_tolerated() -> None:
    arrays = tiny_arrays()
    arrays["val_images"][0] = arrays["train_images"][3]
    known = check_image_splits(arrays, 2, "binary", 1, tolerated=[("train", 3, "val", 0)])
    assert known == ["train[3] = val[0]"]
    arrays["test_images"][1] = arrays["train_images"][4]
    with pytest.raises(DataError, match=r"1 image\(s\) appear.*train\[4\] = test\[1\]"):
        check_image_splits(arrays, 2, "binary", 1, tolerated=[("train", 3, "val", 0)])
