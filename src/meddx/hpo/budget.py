"""The trial budget `hpo.n_trials`: what counts toward it, and the stop when it is spent.

Finished and running trials count, except trials that a killed stage left RUNNING (orphans):
the next execution fails them through `Study.tell` and records their numbers on the study, and
the budget grows by that many. Optuna's `MaxTrialsCallback` ends a worker's search once the
counted trials reach the budget, whichever worker ran them. It is checked as each trial ends,
so one worker spends the budget exactly; k workers that end trials at the same moment may each
start one more (at most k - 1 over): a trial cannot be withdrawn once the storage numbered it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

ORPHANS_ATTR = "meddx_orphaned_trials"  # study user attribute: numbers of the orphaned trials


def _counted() -> tuple[optuna.trial.TrialState, ...]:
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.FAIL)


def fail_orphans(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Fail the trials left RUNNING by a killed stage, so a rerun does not wait on them.

    Only for local storages: DVC runs one stage at a time per project, so at start-up nothing
    else can be running trials there. Shared databases rely on Optuna's heartbeat instead.
    """
    from optuna.trial import TrialState

    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in orphans:
        study.tell(trial.number, state=TrialState.FAIL)
    if orphans:
        known = study.user_attrs.get(ORPHANS_ATTR, [])
        study.set_user_attr(ORPHANS_ATTR, sorted({*known, *(t.number for t in orphans)}))
    return orphans


def budget(study: optuna.Study, n_trials: int) -> int:
    """How many counted trials (`_counted`) end the search: `n_trials` plus the orphans."""
    return n_trials + len(study.user_attrs.get(ORPHANS_ATTR, []))


def remaining(study: optuna.Study, n_trials: int) -> int:
    """Trials still to run before the budget is spent (negative once it is overspent)."""
    return budget(study, n_trials) - len(study.get_trials(deepcopy=False, states=_counted()))


def stop_when_spent(study: optuna.Study, n_trials: int) -> optuna.study.MaxTrialsCallback:
    """The callback that stops `study.optimize` once the budget is spent."""
    from optuna.study import MaxTrialsCallback

    return MaxTrialsCallback(budget(study, n_trials), states=_counted())
