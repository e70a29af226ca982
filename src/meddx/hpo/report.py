"""The study at a glance: Optuna's own plots (matplotlib, no plotly here) and a trials table."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna


def save_plots(study: optuna.Study, out_dir: Path) -> dict[str, str]:
    """Write each plot as PNG; return the ones that could not be drawn, with the reason.

    Importances need two or more complete trials with varied parameters: a tiny or young
    study legitimately lacks them, which must not fail the stage.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from optuna.exceptions import ExperimentalWarning
    from optuna.visualization import matplotlib as vis

    plots = {
        "optimization_history": vis.plot_optimization_history,
        "param_importances": vis.plot_param_importances,
        "parallel_coordinate": vis.plot_parallel_coordinate,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped = {}
    for name, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            try:
                axes = plot(study)
            except Exception as exc:  # any reason not to draw one plot is not worth a failed stage
                skipped[name] = f"{type(exc).__name__}: {exc}"
                continue
        figure = (np.ravel(axes)[0] if isinstance(axes, np.ndarray) else axes).figure
        figure.savefig(out_dir / f"{name}.png", dpi=100, bbox_inches="tight")
        plt.close(figure)
    return skipped


def trials_csv(study: optuna.Study) -> str:
    frame = study.trials_dataframe(
        attrs=("number", "value", "state", "params", "duration", "user_attrs")
    )
    return frame.to_csv(index=False)
