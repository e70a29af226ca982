"""ECG beat extraction and splits: windows, AAMI labels, RR features, split checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from meddx.data.ecg_beat_extraction import (
    AAMI_CLASSES,
    AAMI_GROUPS,
    BEAT_SYMBOLS,
    RR_FEATURES,
    aami_labels,
    beat_channels,
    beat_windows,
    filter_signal,
    record_beats,
    rr_features,
)
from meddx.data.ecg_splits import (
    check_ecg_splits,
    check_record_leakage,
    choose_val_records,
    intra_patient,
)
from meddx.errors import ConfigError, DataError

WFDB_SYMBOLS = sorted(BEAT_SYMBOLS | set('+~|x!"[]^tupsT*D=@'))


@st.composite
def records_with_peaks(draw: st.DrawFn) -> tuple[int, np.ndarray, int, int]:
    length = draw(st.integers(1, 3000))
    peaks = draw(st.lists(st.integers(0, length - 1), max_size=60))
    before = draw(st.integers(0, 400))
    after = draw(st.integers(1, 400))
    return length, np.array(sorted(peaks), dtype=np.int64), before, after


@settings(max_examples=200, deadline=None)
@given(records_with_peaks())
def test_windows_are_centred_on_the_r_peak_and_never_leave_the_record(case):
    length, peaks, before, after = case
    signal = np.arange(length)  # each sample holds its own index
    windows, kept = beat_windows(signal, peaks, before, after)
    assert windows.shape == (int(kept.sum()), before + after)
    # The sample at index `before` is the R peak, and the window is the contiguous stretch
    # around it: a wrapped (negative) or clipped index could not produce this.
    assert np.array_equal(windows[:, before], peaks[kept])
    assert np.array_equal(windows, peaks[kept, None] + np.arange(-before, after))
    # Exactly the beats whose window fits are kept; those near either edge are dropped.
    fits = (peaks >= before) & (peaks + after <= length)
    assert np.array_equal(kept, fits)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(WFDB_SYMBOLS) | st.text(max_size=2), max_size=50))
def test_aami_mapping_follows_the_benchmark_groups_and_drops_everything_else(symbols):
    labels = aami_labels(symbols)
    assert labels.shape == (len(symbols),) and labels.dtype == np.int64
    for symbol, label in zip(symbols, labels, strict=True):
        groups = [AAMI_CLASSES.index(g) for g, members in AAMI_GROUPS.items() if symbol in members]
        assert label == (groups[0] if groups else -1)


def test_aami_groups_are_those_of_benchmarks_md():
    assert list(aami_labels(["N", "L", "R", "e", "j"])) == [0] * 5
    assert list(aami_labels(["A", "a", "J", "S"])) == [1] * 4
    assert list(aami_labels(["V", "E"])) == [2, 2]
    assert list(aami_labels(["F"])) == [3]
    assert list(aami_labels(["/", "f", "Q"])) == [4] * 3
    assert list(aami_labels(["B", "r", "n", "?", "+", "~", "|"])) == [-1] * 7


def test_rr_features_are_previous_next_local_mean_and_ratio_in_seconds():
    rr = rr_features(np.array([0, 360, 720, 900]), fs=360.0, local=2, average_s=300)
    assert np.isnan(rr[0, [0, 2, 3]]).all() and np.isnan(rr[3, 1])
    np.testing.assert_allclose(rr[1:, 0], [1.0, 1.0, 0.5])  # previous
    np.testing.assert_allclose(rr[:3, 1], [1.0, 1.0, 0.5])  # next
    np.testing.assert_allclose(rr[1:, 2], [1.0, 1.0, 0.75])  # mean of the last 2
    np.testing.assert_allclose(rr[1:, 3], [1.0, 1.0, 0.5 / 0.75])


def test_rr_ratios_are_previous_and_next_over_local_and_previous_over_next():
    peaks = np.array([0, 360, 720, 900, 1440])  # RR 1, 1, 0.5, 1.5: an early beat, then a pause
    rr = rr_features(peaks, fs=360.0, local=2, average_s=300)
    np.testing.assert_allclose(rr[1:, 3], rr[1:, 0] / rr[1:, 2])
    np.testing.assert_allclose(rr[1:4, 4], [1.0, 0.5 / 1.0, 1.5 / 0.75])
    np.testing.assert_allclose(rr[1:4, 5], [1.0, 2.0, 0.5 / 1.5])
    slower = rr_features(peaks * 2, fs=360.0, local=2, average_s=300)  # half the rate
    ratios = [3, 4, 5, 7, 8, 9]
    np.testing.assert_allclose(slower[:, ratios], rr[:, ratios])  # the ratios do not change


def test_the_average_rr_is_the_mean_of_intervals_ending_within_half_the_window():
    # RR 1 s throughout, then 2 s: the average follows the beat's own neighbourhood only.
    times = np.concatenate([np.arange(0, 11), np.arange(12, 31, 2)]).astype(np.float64)
    rr = rr_features((times * 360).astype(np.int64), fs=360.0, local=2, average_s=4)
    average = dict(zip(times, rr[:, 6], strict=True))
    assert average[0] == 1.0  # intervals ending at 1, 2 s
    assert average[5] == 1.0  # ending at 3..7 s
    assert average[10] == 5 / 4  # ending at 8, 9, 10 (1 s) and 12 (2 s)
    assert average[30] == 2.0  # ending at 28, 30 s
    np.testing.assert_allclose(rr[:, 7:10], rr[:, [0, 1, 2]] / rr[:, 6:7])
    with pytest.raises(ConfigError, match="rr_average_s=0 must be a positive"):
        rr_features(np.array([0, 360, 720]), fs=360.0, local=2, average_s=0)


FILTER = {"median_ms": [200, 600], "highpass_hz": 0.5, "lowpass_hz": 35.0, "order": 4}


@pytest.mark.parametrize("baseline", ["median", "highpass"])
def test_filters_remove_baseline_wander_and_mains_noise_but_keep_r_peaks_in_place(baseline):
    fs, t = 360.0, np.arange(20 * 360) / 360.0
    peaks = np.arange(180, len(t) - 180, 300)
    beats = np.zeros_like(t)
    for p in peaks:
        beats += np.exp(-0.5 * ((t - t[p]) / 0.012) ** 2)  # 1 mV QRS-like pulses
    wander, mains = 0.8 * np.sin(2 * np.pi * 0.2 * t), 0.2 * np.sin(2 * np.pi * 60 * t)
    spec = OmegaConf.create({"baseline": baseline, **FILTER})
    clean = filter_signal(beats + wander + mains, fs, spec)
    interior = np.arange(360, len(t) - 360)  # filter start-up at the record ends aside
    between = np.setdiff1d(interior, (peaks[:, None] + np.arange(-40, 41)).ravel())
    assert np.abs(clean[between]).max() < 0.1  # wander and 60 Hz gone away from the QRS
    found = [p - 5 + int(np.argmax(clean[p - 5 : p + 6])) for p in peaks]
    assert found == list(peaks)
    with pytest.raises(ConfigError, match="baseline='spline' is not known"):
        filter_signal(beats, fs, OmegaConf.create({**FILTER, "baseline": "spline"}))


def test_record_beats_skip_non_beats_unclassed_beats_and_beats_without_both_neighbours():
    signal = np.sin(np.arange(4000) / 20.0)
    samples = np.array([5, 400, 800, 1200, 1600, 2000, 2400, 3990])
    symbols = np.array(["+", "N", "V", "~", "?", "A", "N", "N"])
    beats = record_beats(
        signal, samples, symbols, fs=360.0, window=(90, 162), rr_local=10, rr_average_s=300
    )
    # '+' and '~' are not beats; '?' is a beat (it counts for RR) without an AAMI class;
    # the first beat lacks a previous one, the last (3990) a next one and room for a window.
    assert beats.annotated == 6
    assert list(beats.labels) == [2, 1, 0]
    np.testing.assert_allclose(
        beats.rr[:, :2],
        [[400 / 360, 800 / 360], [400 / 360, 400 / 360], [400 / 360, 1590 / 360]],
        rtol=1e-6,
    )
    assert beats.beats.shape == (3, 1, 252) and beats.beats.dtype == np.float32
    np.testing.assert_allclose(beats.beats.mean(axis=-1), 0, atol=1e-5)
    np.testing.assert_allclose(beats.beats.std(axis=-1), 1, atol=1e-4)


def test_the_deviation_channel_is_each_beat_minus_the_records_median_beat():
    t = np.linspace(-1, 1, 60)
    normal, ectopic = np.exp(-(t**2) / 0.01), -np.exp(-(t**2) / 0.08)  # narrow up, wide down
    beats = np.stack([normal] * 9 + [ectopic]).astype(np.float32)
    channels = beat_channels(beats, ["beat", "deviation"])
    assert channels.shape == (10, 2, 60) and channels.dtype == np.float32
    np.testing.assert_array_equal(channels[:, 0], beats)
    np.testing.assert_allclose(channels[:9, 1], 0, atol=1e-6)  # the template is the normal beat
    np.testing.assert_allclose(channels[9, 1], ectopic - normal, atol=1e-6)
    np.testing.assert_array_equal(beat_channels(beats, ["deviation"])[:, 0], channels[:, 1])


def test_an_unknown_beat_channel_is_a_config_error():
    with pytest.raises(ConfigError, match=r"channels=\['beat', 'slope'\].*deviation"):
        beat_channels(np.zeros((3, 8), np.float32), ["beat", "slope"])


def test_leakage_check_names_a_record_planted_in_two_splits():
    with pytest.raises(DataError, match=r"record 203 in 'train' and 'test'"):
        check_record_leakage({"train": [101, 203], "val": [112], "test": [100, 203]})
    check_record_leakage({"train": [101], "val": [112], "test": [100]})


def _arrays(n: int = 4, length: int = 8) -> dict[str, np.ndarray]:
    arrays = {}
    for offset, split in enumerate(("train", "val", "test")):
        arrays[f"{split}_beats"] = np.zeros((n, 1, length), np.float32)
        arrays[f"{split}_rr"] = np.ones((n, len(RR_FEATURES)), np.float32)
        arrays[f"{split}_labels"] = np.arange(n, dtype=np.int64) % 5
        arrays[f"{split}_records"] = np.full(n, 100 + offset, np.int64)
    return arrays


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "val_rr",
            np.array([[1, 1, np.nan] + [1] * (len(RR_FEATURES) - 3)] * 4, np.float32),
            r"val_rr holds NaN .* \[0, 1, 2, 3\]",
        ),
        ("test_beats", np.full((4, 1, 8), np.inf, np.float32), "test_beats holds NaN or infinite"),
        ("train_labels", np.array([0, 1, 5, 2]), r"outside 0\.\.4 at indices \[2\]"),
        ("train_beats", np.zeros((4, 8), np.float32), r"shape \(4, 8\); expected \(4, 1, 8\)"),
        ("val_beats", np.zeros((4, 1, 8), np.float64), "dtype float64; expected float32"),
        ("test_records", np.array([100, 101, 102, 103]), r"record 100 in 'train' and 'test'"),
    ],
)
def test_split_checks_refuse_bad_arrays_with_their_location(key, value, message):
    arrays = _arrays()
    arrays[key] = value
    with pytest.raises(DataError, match=message):
        check_ecg_splits(arrays, num_classes=5, length=8, split_mode="inter-patient")


def test_split_checks_refuse_an_empty_split():
    arrays = _arrays()
    for kind, value in _arrays(n=0).items():
        if kind.startswith("val_"):
            arrays[kind] = value
    with pytest.raises(DataError, match="split 'val' is empty"):
        check_ecg_splits(arrays, num_classes=5, length=8, split_mode="inter-patient")


def test_intra_patient_mode_allows_a_record_in_several_splits():
    check_ecg_splits(
        {**_arrays(), "test_records": np.full(4, 100, np.int64)}, 5, 8, "intra-patient"
    )


def test_validation_records_are_whole_ds1_records_chosen_by_seed_to_hold_every_class():
    rng = np.random.default_rng(0)
    counts = {
        r: rng.integers(0, 50, 5) * (rng.random(5) < 0.4) + [500, 0, 0, 0, 0]
        for r in range(100, 122)
    }
    picks = choose_val_records(counts, n_val=4, seed=1)
    assert picks == choose_val_records(counts, n_val=4, seed=1)
    assert len(set(picks)) == 4 and set(picks) <= set(counts)
    held = sum(counts[r] for r in picks)
    for label in (1, 2, 3):  # every class present in DS1 reaches validation
        assert held[label] > 0
    with pytest.raises(ConfigError, match="val_records=22"):
        choose_val_records(counts, n_val=22, seed=1)


def test_intra_patient_split_shares_each_class_by_the_configured_fractions():
    labels = np.repeat(np.arange(5), [700, 100, 200, 50, 10])
    parts = intra_patient(labels, [0.7, 0.1, 0.2], seed=0)
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[parts["train"]]).tolist() == [490, 70, 140, 35, 7]
    assert np.bincount(labels[parts["val"]]).tolist() == [70, 10, 20, 5, 1]
    with pytest.raises(ConfigError, match="summing to 1"):
        intra_patient(labels, [0.7, 0.2, 0.2], seed=0)
