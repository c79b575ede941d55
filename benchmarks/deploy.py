"""Where the time of a deploy goes, for images already on the server, and what moving traffic by slot costs each request.

    .venv/bin/python benchmarks/deploy.py [--runs 4] [--rate 200] [--seconds 10]

Needs a provisioned lab target (`inv lab.up && fab -H lab provision`). It
deploys v1 and v2 once each to ship them, then alternates between them and
prints, per run and as a median: the whole command's wall time, the time
spent starting the new containers and waiting for their health checks, the configured drain, the traffic switch,
the time the server spends in Docker (the other remote steps), and slipway's own overhead (all
the rest: Python start-up, config, rendering, SSH, reporting), with the
number of SSH round trips.

Then it compares the latency nginx adds on the way to the serving release's
containers, at a fixed request rate over keep-alive connections (latency
counted from when each request was due, so a stall is not hidden): the path
deploys use now (the slot marker read per request, the slot's upstream
group of fixed addresses, a new upstream connection per request) against the one
before it (an upstream block naming the release's containers, kept-alive
upstream connections, moved by reloading nginx). Both are served by the
lab's nginx from a config this benchmark adds (one reload) and removes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
FAB = Path(sys.executable).parent / "fab"
STEP = re.compile(r"^\[lab\] (?P<name>.+?) +(?:ok|changed|failed) +(?P<seconds>\d+\.\d+)s")
# The web containers started and their health waited for, in one round trip.
HEALTH_STEP_END = ", wait until healthy"
SWITCH_STEP = "move traffic to "


def deploy(version: str) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run([str(FAB), "-H", "lab", "deploy", "--version", version], cwd=PROJECT,
                            capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"deploy {version} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, result.stdout


def breakdown(elapsed: float, output: str, drain: float) -> dict[str, float]:
    steps = {m["name"]: float(m["seconds"]) for m in map(STEP.match, output.splitlines()) if m}
    health = sum(seconds for name, seconds in steps.items() if name.endswith(HEALTH_STEP_END))
    remote = sum(seconds for name, seconds in steps.items() if not name.startswith("connect"))
    switch = next(seconds for name, seconds in steps.items() if name.startswith(SWITCH_STEP))
    docker = remote - health - drain - switch
    trips = int(re.search(r"(\d+) SSH round trips", output).group(1))
    return {"total": elapsed, "start and health wait": health, "drain": drain, "move traffic": switch,
            "docker on server": docker, "slipway overhead": elapsed - remote, "round trips": trips}


BENCH_CONF = "/srv/demo/shared/nginx/bench-paths.conf"
PATHS_CONF = """
upstream bench_previous {{
{servers}
    keepalive 32;
}}
server {{
    listen 80;
    server_name previous.bench;
    location / {{
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://bench_previous;
    }}
}}
server {{
    listen 80;
    server_name slots.bench;
    set $slipway_slot blue;
    if (-f /etc/nginx/conf.d/traffic/green-serves) {{
        set $slipway_slot green;
    }}
    location / {{
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://demo-$slipway_slot-api;
    }}
}}
"""


def in_target(command: str, stdin: str | None = None) -> str:
    return subprocess.run(["docker", "exec", "-i", "slipway-lab-target", "sh", "-c", command], input=stdin,
                          capture_output=True, text=True, check=True).stdout


def paced_latencies(port: int, host: str, rate: float, seconds: float, connections: int = 8) -> list[float]:
    """Milliseconds from each request's due time to its full response, RATE requests/s over CONNECTIONS."""
    latencies, failures, lock = [], [], threading.Lock()
    interval = connections / rate
    start = time.monotonic() + 0.2

    def client(offset: float) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        due = start + offset
        while due < start + seconds:
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                connection.request("GET", "/version", headers={"Host": host})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()
                ok = False
            with lock:
                (latencies if ok else failures).append((time.monotonic() - due) * 1000)
            due += interval
        connection.close()

    threads = [threading.Thread(target=client, args=(index * interval / connections,)) for index in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit(f"{len(failures)} requests to {host} failed")
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def compare_paths(rate: float, seconds: float, rounds: int = 3) -> None:
    status = json.loads(subprocess.run([str(Path(sys.executable).parent / "inv"), "lab.status", "--json"], cwd=PROJECT,
                                       capture_output=True, text=True, check=True).stdout)
    serving = in_target("docker ps --filter label=slipway.service=api --format '{{.Names}}'").split()
    servers = "\n".join(f"    server {name}:8000;" for name in sorted(serving))
    in_target(f"cat > {BENCH_CONF} && docker exec demo-nginx-1 nginx -t -q && docker exec demo-nginx-1 nginx -s reload",
              PATHS_CONF.format(servers=servers))
    try:
        time.sleep(1)
        measured = {"previous.bench": [], "slots.bench": []}
        for _ in range(rounds):  # interleaved, so drift on the machine hits both alike
            for host in measured:
                paced_latencies(status["http_port"], host, rate, 1)  # warm-up
                measured[host] += paced_latencies(status["http_port"], host, rate, seconds)
    finally:
        in_target(f"rm -f {BENCH_CONF} && docker exec demo-nginx-1 nginx -s reload")
    print(f"\nlatency through nginx at {rate:.0f} requests/s on 8 keep-alive connections, {rounds} x {seconds:.0f} s "
          f"per path (ms, from each request's due time):")
    names = {"previous.bench": "upstream block, reload to move (before)", "slots.bench": "slot marker + slot's group (now)"}
    for host, values in measured.items():
        print(f"  {names[host]:<42} p50 {percentile(values, 0.5):6.2f}   p99 {percentile(values, 0.99):6.2f}   "
              f"({len(values)} requests)")
    added = {share: percentile(measured["slots.bench"], share) - percentile(measured["previous.bench"], share)
             for share in (0.5, 0.99)}
    print(f"  added by the slot path: p50 {added[0.5]:+.2f} ms, p99 {added[0.99]:+.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--rate", type=float, default=200, help="requests per second in the latency comparison")
    parser.add_argument("--seconds", type=float, default=10, help="length of each measured round per path")
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT))
    from fabfile import config

    drain = float(config.load(PROJECT / "inventories", "lab").inventory.app.drain_seconds)
    for version in ("v1", "v2"):
        deploy(version)  # ships the image once; what follows measures already-shipped deploys
    rows = []
    for run in range(args.runs):
        version = "v1" if run % 2 == 0 else "v2"
        rows.append(breakdown(*deploy(version), drain))
        print(f"run {run + 1} ({version}): " + ", ".join(f"{k} {v:.2f}s" if k != "round trips" else f"{k} {v}"
                                                         for k, v in rows[-1].items()))
    print(f"\nmedian of {args.runs} deploys of an already-shipped image:")
    for key in rows[0]:
        value = statistics.median(row[key] for row in rows)
        print(f"  {key:<22} {value:.0f}" if key == "round trips" else f"  {key:<22} {value:6.2f}s")
    compare_paths(args.rate, args.seconds)


if __name__ == "__main__":
    main()
