"""What lab tests read off the target about its traffic: the serving release, nginx's processes."""

import time

# The serving slot is green while its marker exists, blue otherwise; its file names the release.
SERVING = ("if [ -e /srv/demo/shared/nginx/traffic/green-serves ]; then slot=green; else slot=blue; fi; "
           "cat /srv/demo/shared/nginx/traffic/$slot")


def live_release(as_deploy) -> str:
    return as_deploy.run(SERVING).stdout.strip()


def nginx_processes(as_deploy) -> str:
    """nginx's master and workers with their start times: a reload or restart changes them."""
    return as_deploy.run("docker top demo-nginx-1 -o pid,lstart,args").stdout


def restart_nginx(as_deploy, get_status) -> None:
    """`docker restart` nginx and wait (10 s at most) until GET_STATUS() gets an HTTP answer again."""
    as_deploy.run("docker restart demo-nginx-1")
    for _ in range(50):
        try:
            get_status()
            return
        except OSError:  # still starting
            time.sleep(0.2)
