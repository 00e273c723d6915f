"""A local Ray cluster must not outlive a driver killed with kill -9 (issue 34 item 13)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vidcodec.eval.ray_watchdog import process_tree, start_time

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
# A "driver" that starts a "cluster" process, which starts an "agent" that ignores SIGTERM, as Ray's
# DashboardAgent does; the driver prints both pids.
DRIVER = """
import subprocess, sys, time
agent = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
cluster = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys, time; "
                            f"p = subprocess.Popen([sys.executable, '-c', {agent!r}]); "
                            f"print(p.pid, flush=True); time.sleep(300)"],
                           stdout=subprocess.PIPE, text=True)
print(cluster.pid, cluster.stdout.readline().strip(), flush=True)
time.sleep(300)
"""


def wait_until_gone(pids: set[int], timeout_s: float) -> set[int]:
    deadline = time.monotonic() + timeout_s
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if start_time(pid) is not None}
        time.sleep(0.2)
    return alive


def test_the_cluster_and_an_agent_ignoring_sigterm_die_with_a_killed_driver():
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True, env=ENV)
    cluster_pid, agent_pid = map(int, driver.stdout.readline().split())
    watchdog = subprocess.Popen([sys.executable, "-m", "vidcodec.eval.ray_watchdog", str(driver.pid), str(cluster_pid)],
                                env=ENV, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not {pid for pid, _ in process_tree({cluster_pid})} >= {cluster_pid, agent_pid}:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(2)  # the watchdog has polled the tree (it starts by importing vidcodec)
        driver.kill()
        driver.wait()
        assert wait_until_gone({cluster_pid, agent_pid}, timeout_s=30) == set()
        assert watchdog.wait(timeout=30) == 0
    finally:
        for pid in (cluster_pid, agent_pid):
            if start_time(pid) is not None:
                os.kill(pid, signal.SIGKILL)
        driver.kill()
        watchdog.kill()


def test_the_watchdog_leaves_processes_alone_while_the_driver_lives():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "vidcodec.eval.ray_watchdog", str(os.getpid()), str(sleeper.pid)],
        env=ENV, start_new_session=True)
    try:
        time.sleep(3)
        assert sleeper.poll() is None and watchdog.poll() is None
    finally:
        watchdog.kill()
        sleeper.kill()
        sleeper.wait()
        watchdog.wait()


RAY_DRIVER = """
import time, ray
from vidcodec.eval.ray_watchdog import local_cluster_pids, process_tree, start_watchdog
ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
roots = local_cluster_pids()
start_watchdog(roots)
time.sleep(8)  # the raylet starts its agents
print(" ".join(str(pid) for pid, _ in process_tree(roots)), flush=True)
time.sleep(300)
"""


@pytest.mark.slow
def test_a_real_local_ray_cluster_leaves_no_process_after_kill_9_of_its_driver():
    driver = subprocess.Popen([sys.executable, "-c", RAY_DRIVER], stdout=subprocess.PIPE, text=True, env=ENV)
    pids = {int(pid) for pid in driver.stdout.readline().split()}
    try:
        assert len(pids) >= 3  # GCS, raylet, its agents, ...
        driver.kill()
        driver.wait()
        assert wait_until_gone(pids, timeout_s=60) == set()
    finally:
        for pid in pids:
            if start_time(pid) is not None:
                os.kill(pid, signal.SIGKILL)
