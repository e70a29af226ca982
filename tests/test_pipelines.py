"""Image pipelines beside the default one (`pipelines` in params.yaml, dvc.yaml `foreach`): the
same stage modules, the entry's sections in place of the default's, files one folder down."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import CONF
from meddx.cli import main
from meddx.config import compose, load_params, to_yaml
from meddx.errors import ConfigError, DataError
from meddx.evaluation.report.cells import with_ci
from meddx.paths import Layout, require
from meddx.stages import acquire_images, evaluate, preprocess_images, report, train_cnn

TINY_SHAPES = (
    "data.image.synthetic.train=32",
    "data.image.synthetic.val=8",
    "data.image.synthetic.test=8",
    "cnn.max_epochs=1",
    "evaluate.bootstrap=20",
)
TINY_VOLUMES = (
    "data.image.synthetic.train=48",
    "data.image.synthetic.val=24",
    "data.image.synthetic.test=24",
    "cnn.max_epochs=1",
    "evaluate.bootstrap=20",
)


def test_each_pipeline_file_is_packaged_under_its_own_name() -> None:
    for path in (CONF / "pipelines").glob("*.yaml"):
        assert path.read_text().startswith(f"# @package pipelines.{path.stem}\n"), path


def test_a_pipeline_puts_its_sections_in_place_of_the_defaults_whole() -> None:
    default = compose(conf_dir=CONF)
    volume = compose(conf_dir=CONF, pipeline="volume")
    assert (default.data.image.name, default.cnn.name) == ("synthetic", "basic")
    assert volume.data.image == default.pipelines.volume.data.image
    assert volume.cnn == default.pipelines.volume.cnn
    assert volume.data.ecg == default.data.ecg  # a namespace (`data`) is walked, not replaced
    assert (volume.trainer, volume.evaluate, volume.seed) == (
        default.trainer,
        default.evaluate,
        default.seed,
    )
    assert "hidden" in default.cnn.net and "hidden" not in volume.cnn.net  # nothing leaks
    assert volume.paths.pipeline == "volume" and "pipeline" not in default.paths


def test_the_segmentation_pipeline_trains_a_unet_on_the_offline_shapes() -> None:
    seg = compose(conf_dir=CONF, pipeline="segmentation")
    assert (seg.data.image.name, seg.data.image.task, seg.cnn.name) == (
        "synthetic_seg",
        "segmentation",
        "unet",
    )
    assert seg.cnn.monitor == "val_dice" and seg.paths.pipeline == "segmentation"
    assert "hidden" not in seg.cnn.net  # the default classifier's head does not leak in


def test_overrides_given_with_a_pipeline_set_that_pipelines_values(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(to_yaml(compose(conf_dir=CONF)))
    cfg = load_params(params, ["cnn.max_epochs=1"], pipeline="volume")
    assert (cfg.cnn.name, cfg.cnn.max_epochs) == ("convnet", 1)


def test_an_unknown_pipeline_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(
        ConfigError, match=r"--pipeline nope: no such pipeline.*\['segmentation', 'volume'\]"
    ):
        compose(conf_dir=CONF, pipeline="nope")
    assert main(["acquire_images", "--pipeline", "nope"]) == 2
    assert "conf/pipelines/nope.yaml" in capsys.readouterr().err


def test_the_default_pipeline_keeps_its_paths_and_another_goes_one_folder_down() -> None:
    default, volume = Layout("/p"), Layout("/p", pipeline="volume")
    assert str(default.raw_images) == "/p/data/raw/images.npz"
    assert str(default.metrics("evaluate")) == "/p/reports/metrics/evaluate.json"
    assert str(default.model_dir("cnn")) == "/p/models/cnn"
    assert str(volume.raw_images) == "/p/data/raw/volume/images.npz"
    assert str(volume.processed_images_meta) == "/p/data/processed/volume/images.json"
    assert str(volume.model_dir("cnn")) == "/p/models/volume/cnn"
    assert str(volume.metrics("evaluate")) == "/p/reports/metrics/volume/evaluate.json"
    assert str(volume.plots("evaluate")) == "/p/reports/plots/volume/evaluate"
    assert str(volume.resume_dir("train_cnn", "k")) == "/p/runs/volume/train_cnn/k"
    assert (volume.reports, volume.unsent_runs) == (default.reports, default.unsent_runs)
    assert (default.stage("evaluate"), volume.stage("evaluate")) == ("evaluate", "volume/evaluate")


def test_a_missing_input_of_a_pipeline_names_its_foreach_stage(tmp_path: Path) -> None:
    layout = Layout(tmp_path, pipeline="volume")  # no dvc.yaml there: this checkout's is read
    with pytest.raises(DataError, match=r"`dvc repro acquire_images_for@volume`"):
        require(layout.raw_images, layout.root)


def run_into_the_report(
    root: Path, tracking_db: str, pipeline: str, overrides: tuple[str, ...]
) -> None:
    """The four image stages of `pipeline` in a project at `root`, then the report."""
    common = [
        f"paths.root={root}",
        f"tracking.uri={tracking_db}",
        f"tracking.experiment={pipeline}",
    ]
    cfg = compose([*common, *overrides], conf_dir=CONF, pipeline=pipeline)
    for stage in (acquire_images, preprocess_images, train_cnn, evaluate):
        stage.run(cfg)
    report.run(compose(common, conf_dir=CONF))


@pytest.mark.slow
def test_the_volume_pipeline_runs_through_the_image_stages_into_the_report(
    tmp_path: Path, tracking_db: str
) -> None:
    run_into_the_report(tmp_path, tracking_db, "volume", TINY_VOLUMES)

    tested = json.loads((tmp_path / "reports/metrics/volume/evaluate.json").read_text())
    assert 0.0 <= tested["test_auc"] <= 1.0 and tested["n_test"] == 24
    assert not (tmp_path / "reports/metrics/evaluate.json").exists()  # the default's untouched
    text = (tmp_path / "reports/report.md").read_text()
    section = text[text.index("## volume_cnn on synthetic3d") :]
    assert f"| meddx volume_cnn (this pipeline) | {with_ci(tested, 'test_auc')}" in section
    assert "No published results for dataset 'synthetic3d'" in section  # no row beside it
    assert "](plots/volume/evaluate/roc.png)" in section
    assert re.search(r"\| volume/train_cnn \| best_val_auc \| ", text)  # the other stages too


@pytest.mark.slow
def test_the_segmentation_pipeline_scores_dice_per_structure_into_the_report(
    tmp_path: Path, tracking_db: str
) -> None:
    run_into_the_report(tmp_path, tracking_db, "segmentation", TINY_SHAPES)

    tested = json.loads((tmp_path / "reports/metrics/segmentation/evaluate.json").read_text())
    assert set(tested["per_class"]) == {"disc", "square"} and tested["n_test"] == 8
    for structure in tested["per_class"].values():
        assert 0.0 <= structure["dice_ci_low"] <= structure["dice"] <= structure["dice_ci_high"]
        assert {"hd95_mm", "msd_mm"} <= set(structure)
    plots = tmp_path / "reports/plots/segmentation/evaluate"
    assert (plots / "overlays.png").stat().st_size > 0 and (plots / "per_case.csv").is_file()
    assert len(list((plots / "masks").glob("*.png"))) == 8
    assert (tmp_path / "reports/model_cards/segmentation/evaluate.md").is_file()
    text = (tmp_path / "reports/report.md").read_text()
    section = text[text.index("## segmentation_unet on synthetic_seg") :]
    assert f"| {with_ci(tested, 'test_dice')}" in text  # the models table's Dice column
    assert "No published comparison" in section  # no row beside synthetic shapes
    assert "](plots/segmentation/evaluate/overlays.png)" in section
