"""SIGTERM and SIGINT as an exception, so that a stopped stage says so: exit 128+N, run KILLED.

Left alone, neither ends a stage honestly. SIGTERM kills Python at once outside
`Trainer.fit` (the MLflow run stays RUNNING); inside it, pytorch_lightning 2.6 notes the signal
and raises `SIGTERMException` at the next batch, a `SystemExit` without a code, so the stage
exited 0 as if it had finished. SIGINT's KeyboardInterrupt is caught by Lightning, which
calls `sys.exit(1)`.

`raised_as_interrupted()` makes both raise `Interrupted` where the main thread is. Lightning
calls a handler registered before `fit` after its own (which forwards the signal to DDP
processes it launched) and lets any exception other than KeyboardInterrupt through after its
teardown; it writes checkpoints in an fsspec transaction, so `last.ckpt` is the last complete
one and the next run resumes from it.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """A stage stopped by a signal. Not an `Exception`, so that the `except Exception` blocks
    that keep a stage going (an unreachable tracking store, say) do not swallow it; not a
    KeyboardInterrupt, which Lightning turns into exit code 1."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process the signal killed: 143 for SIGTERM, 130 for SIGINT."""
        return 128 + self.signum


@contextlib.contextmanager
def raised_as_interrupted() -> Iterator[None]:
    """Within the block, the first SIGTERM or SIGINT raises `Interrupted`.

    Later signals are ignored, so a second Ctrl+C cannot cut short the closing of the run the
    first one started (SIGKILL still ends the process; the next run then closes its run).
    """
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:
            return
        received.append(signum)
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
