"""Stage `acquire_ecg`: bring the configured ECG records into `data/raw/ecg.npz`.

MIT-BIH comes from the mirror, the download cache or PhysioNet (checksum-verified, see
`meddx.data.mitbih`); the synthetic source generates stand-in records for the same record
numbers. Either way one lead per record plus its reference annotations, in one layout.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from meddx.data import mitbih, synthetic_ecg
from meddx.data.ecg_records import save_records
from meddx.errors import ConfigError
from meddx.paths import Layout
from meddx.tracking import stage_run

STAGE = "acquire_ecg"
SECTIONS = ("seed", "data.ecg", "paths.mirror")
SOURCES = ("mitbih", "synthetic")


def wanted_records(spec: DictConfig) -> list[int]:
    """`records` (default: every DS1 and DS2 record) minus the excluded (paced) ones."""
    listed = spec.records if spec.records is not None else [*spec.ds1, *spec.ds2]
    excluded = {int(r) for r in spec.exclude}
    wanted = sorted({int(r) for r in listed} - excluded)
    if not wanted:
        raise ConfigError(
            f"No ECG record left to read: data.ecg.records={list(listed)} minus "
            f"data.ecg.exclude={sorted(excluded)}"
        )
    return wanted


def run(cfg: DictConfig, any_lead: bool = False) -> dict[str, Any]:
    """`any_lead` (benchmarks only, see `mitbih.read_record`) reads all 48 MIT-BIH records."""
    layout = Layout.of(cfg)
    spec = cfg.data.ecg
    records = wanted_records(spec)
    with stage_run(cfg, STAGE, run_name=f"{STAGE} {spec.name}", sections=SECTIONS) as tracked:
        checked = unchecked = 0
        if spec.source == "synthetic":
            acquired = synthetic_ecg.generate(
                records, spec.synthetic.beats_per_record, spec.fs, spec.synthetic.noise, cfg.seed
            )
        elif spec.source == "mitbih":
            source = mitbih.Source(
                mirror=layout.mirror, cache=layout.cache_dir("mitbih"), url=spec.url
            )
            acquired, checked, unchecked = mitbih.acquire(
                records, source, spec.lead, spec.fs, any_lead, spec.allow_unchecked
            )
        else:
            raise ConfigError(
                f"data.ecg.source={spec.source!r} is not known; known: {list(SOURCES)}"
            )
        save_records(layout.raw_ecg, acquired, spec.fs, spec.lead)
        summary = {
            "records": len(acquired),
            "samples": int(sum(len(r.signal) for r in acquired)),
            "annotations": int(sum(len(r.ann_sample) for r in acquired)),
            "sha256_checked": checked,
            "sha256_unchecked": unchecked,  # > 0 only with data.ecg.allow_unchecked=true
        }
        tracked.log_metrics(summary)
    return summary
