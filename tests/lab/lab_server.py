"""What lab tests read off the target about its traffic: the serving release, nginx's processes; and how they
wait for something to happen there."""

import time
from typing import Callable

from lab_names import LAB


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Call PREDICATE every INTERVAL seconds until it returns something true, and return that; past TIMEOUT
    seconds, raise AssertionError naming WHAT was waited for."""
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}, in vain")
        time.sleep(interval)


def serving_command() -> str:
    """A shell command that prints the serving release: the serving slot is green while its marker exists,
    blue otherwise; its file names the release."""
    traffic = LAB.traffic_dir
    return f"if [ -e {traffic}/green-serves ]; then slot=green; else slot=blue; fi; cat {traffic}/$slot"


def live_release(as_deploy) -> str:
    return as_deploy.run(serving_command()).stdout.strip()


def nginx_processes(as_deploy) -> str:
    """nginx's master and workers with their start times: a reload or restart changes them."""
    return as_deploy.run(f"docker top {LAB.nginx_container} -o pid,lstart,args").stdout


def restart_nginx(as_deploy, get_status) -> None:
    """`docker restart` nginx and wait (10 s at most) until GET_STATUS() gets an HTTP answer again."""
    as_deploy.run(f"docker restart {LAB.nginx_container}")

    def answers():
        try:
            get_status()
            return True
        except OSError:  # still starting
            return False

    wait_until(answers, 10, f"{LAB.nginx_container} to answer HTTP again after `docker restart`")
