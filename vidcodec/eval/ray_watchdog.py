"""A local Ray cluster must not outlive the eval driver that started it.

``ray.shutdown()`` stops the cluster when the driver ends normally or by an exception. After kill -9
of the driver, Ray's raylet and GCS go, but its DashboardAgent and RuntimeEnvAgent stay alive,
re-parented to PID 1, and ignore SIGTERM (issue 34 item 13). So the driver starts this watchdog in
its own session: while the driver lives it records the cluster's processes and their descendants
(pid and start time, so that a reused pid is never touched); when the driver is gone it sends
SIGKILL to those still alive. After a normal shutdown the driver stops the watchdog first.

Linux only (/proc); elsewhere the watchdog is not started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.5
PROC = Path("/proc")


def start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat); None when gone
    or a zombie (dead, not yet reaped by its parent)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


def _parent_pids() -> dict[int, int]:
    parents = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def process_tree(roots: set[int]) -> set[tuple[int, int]]:
    """(pid, start time) of ``roots`` and all their live descendants."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parent_pids().items():
        children.setdefault(parent, []).append(pid)
    found, seen, stack = set(), set(), list(roots)
    while stack:
        pid = stack.pop()
        started = start_time(pid)
        if started is None or pid in seen:
            continue
        seen.add(pid)
        found.add((pid, started))
        stack.extend(children.get(pid, []))
    return found


def watch(driver_pid: int, roots: set[int], poll_s: float = POLL_S) -> set[int]:
    """Record the process tree of ``roots`` while ``driver_pid`` lives; then SIGKILL what is left of it.
    Returns the pids killed."""
    driver_started = start_time(driver_pid)
    known: set[tuple[int, int]] = set()
    while driver_started is not None and start_time(driver_pid) == driver_started:
        known |= process_tree(roots | {pid for pid, _ in known})
        time.sleep(poll_s)
    killed = set()
    for pid, started in known:
        if pid != os.getpid() and start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
    return killed


def start_watchdog(roots: set[int]) -> subprocess.Popen | None:
    """Start a watchdog of this process over the Ray processes ``roots`` (see module docstring)."""
    if not PROC.is_dir() or not roots:
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "vidcodec.eval.ray_watchdog", str(os.getpid()), *map(str, sorted(roots))],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C or kill of the driver's process group must not stop it
    )


def stop_watchdog(watchdog: subprocess.Popen | None) -> None:
    """After ray.shutdown(): the cluster is gone, the watchdog has nothing left to do."""
    if watchdog is not None:
        watchdog.kill()
        watchdog.wait()


def local_cluster_pids() -> set[int]:
    """Pids of the processes of the Ray cluster this process started (raylet, GCS, ...)."""
    from ray._private import worker

    node = getattr(worker, "_global_node", None)
    if node is None:
        return set()
    return {process.pid for _, process in node.live_processes()}


if __name__ == "__main__":
    watch(int(sys.argv[1]), {int(pid) for pid in sys.argv[2:]})
