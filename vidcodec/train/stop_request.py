"""A stop asked for by a signal while training: Ctrl-C (SIGINT), or SIGTERM from a scheduler, a
session's end or ``kill``. The training loop finishes the step under way, writes its checkpoint and
stops, instead of losing everything since the last periodic checkpoint (up to checkpoint_every_s).

A signal that the process ignores stays ignored (a job started with ``nohup ... &`` from a script
ignores SIGINT, as Unix intends). A second signal acts at once, as it would without this handler, so
a stuck process can still be stopped.
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Context manager: while inside, STOP_SIGNALS set ``signal_name`` instead of ending the process."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def __enter__(self) -> StopRequest:
        # Python only lets the main thread install handlers; elsewhere signals act as before.
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                if signal.getsignal(number) is not signal.SIG_IGN:
                    self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame) -> None:
        self.signal_name = signal.Signals(number).name
        self._restore()

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            # None: a handler installed outside Python, which cannot be put back; the default is.
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def __exit__(self, *exc_info) -> None:
        self._restore()
