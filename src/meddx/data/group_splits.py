"""Seeded splits by group (pregnancy, patient), never by image, and the check that holds them.

Two images of one pregnancy in train and test would let a model be scored on a head it has
already seen from another angle. The rule is recorded beside the data (seed, fractions and
the groups of each split) so that anyone can redraw the same split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from omegaconf import DictConfig

from meddx.data.npz import SPLITS
from meddx.errors import ConfigError, DataError


def group_split(groups: Sequence[str], val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Indices of each split: the distinct groups, shuffled with `seed`, cut by fractions.

    Fractions count groups, not images; the test groups are cut first, so changing `val`
    never moves a case into or out of the test split.
    """
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ConfigError(
            f"data.image.split: val={val}, test={test}; each must be in (0, 1), their sum < 1"
        )
    distinct = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(distinct))
    n_test = max(1, round(test * len(distinct)))
    n_val = max(1, round(val * len(distinct)))
    cut = {
        "test": order[:n_test],
        "val": order[n_test : n_test + n_val],
        "train": order[n_test + n_val :],
    }
    split_of = {distinct[g]: split for split, chosen in cut.items() for g in chosen}
    return {
        split: np.array([i for i, group in enumerate(groups) if split_of[group] == split])
        for split in SPLITS
    }


def check_groups_disjoint(groups: dict[str, Sequence[str]]) -> None:
    """A DataError naming the groups that appear in more than one split (leakage)."""
    seen: dict[str, str] = {}
    shared: list[str] = []
    for split in SPLITS:
        for group in sorted(set(groups[split])):
            if group in seen:
                shared.append(f"{group} ({seen[group]}, {split})")
            seen.setdefault(group, split)
    if shared:
        raise DataError(
            f"{len(shared)} group(s) span more than one split (leakage): " + ", ".join(shared[:10])
        )


# What a case reader returns, in this order, and the arrays each split gets from it.
CASE_FIELDS = ("images", "labels", "spacing")


def split_cases(
    groups: Sequence[str],
    ids: Sequence[str],
    rule: DictConfig,
    read: Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]],
    grouped_by: str,
) -> dict[str, np.ndarray]:
    """The dataset layout of cases split by group under `rule` (`data.image.split`).

    `read(i)` gives case i's (image, label, spacing); each split gets `_images`, `_labels`,
    `_spacing` and `_ids`, and `split_rule` records how the split was drawn.
    """
    seed = int(rule.seed)
    chosen = group_split(groups, float(rule.val), float(rule.test), seed)
    check_groups_disjoint({s: [groups[i] for i in chosen[s]] for s in SPLITS})
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        rows = [read(int(i)) for i in chosen[split]]
        for k, field in enumerate(CASE_FIELDS):
            arrays[f"{split}_{field}"] = np.stack([row[k] for row in rows])
        arrays[f"{split}_ids"] = np.array([ids[i] for i in chosen[split]])
    arrays["split_rule"] = np.array(
        f"by {grouped_by}: {len(set(groups))} groups shuffled with seed {seed}; test "
        f"{rule.test}, val {rule.val} of the groups, the rest train"
    )
    return arrays
