"""A fit's per-epoch history as the CSV that DVC plots (`reports/plots/<stage>/history.csv`).

Classifiers and the GAN write their curves in this one format, so every `plots:` entry of
dvc.yaml reads them alike; a key missing from an epoch (another ensemble member's) is nan.
"""

from __future__ import annotations


def history_csv(history: list[dict[str, float]]) -> str:
    keys = sorted({k for row in history for k in row if k != "epoch"})
    lines = [",".join(["epoch", *keys])]
    for row in history:
        lines.append(
            ",".join([str(int(row["epoch"]))] + [f"{row.get(k, float('nan')):.6g}" for k in keys])
        )
    return "\n".join(lines) + "\n"
