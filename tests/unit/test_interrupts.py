"""Ctrl-C: a pending interrupt is raised between remote commands, at once at a prompt."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fabfile import remote

PROJECT = Path(__file__).resolve().parents[2]
UNDER_A_TASK = ("import signal\nfrom fabfile import remote\nfrom fabfile.tasking import ask\n"
                "signal.signal(signal.SIGINT, lambda *_: remote.INTERRUPTED.set())\nprint('ready', flush=True)\n")


def test_a_pending_ctrl_c_is_raised_once_where_slipway_looks():
    remote.INTERRUPTED.set()
    with pytest.raises(KeyboardInterrupt):
        remote.raise_if_interrupted()
    remote.raise_if_interrupted()  # the cleanup after it runs on


def test_ctrl_c_at_a_prompt_stops_it_at_once_even_under_a_task():
    code = UNDER_A_TASK + "try:\n    ask('go on? ')\nexcept KeyboardInterrupt:\n    print('stopped', flush=True)\n"
    asking = subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert asking.stdout.readline() == "ready\n"
    time.sleep(0.3)
    asking.send_signal(signal.SIGINT)
    assert "stopped" in asking.communicate(timeout=10)[0]
