"""Wall time of a no-op provision re-run: slipway next to Ansible and pyinfra.

All three do the same work against the same provisioned lab target: read
where the host stands and change nothing (packages, managed files with
owner and mode, directories, the deploy user, docker.service, the time
zone, the firewall status). Ansible and pyinfra get slipway's desired state
rendered to files, and their fastest usual settings (Ansible: pipelining,
minimal facts; both: connect as the deploy user, become root with sudo).

    .venv/bin/python benchmarks/provision.py [--runs 5]

Needs a provisioned lab target (`inv lab.up && fab -H lab provision`).
ansible-core and pyinfra are installed into benchmarks/.venv on first use.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from fabfile import config  # noqa: E402
from fabfile.commands import provision  # noqa: E402

BENCH_VENV = PROJECT / "benchmarks" / ".venv"
BIN = Path(sys.executable).parent


def tools_venv() -> Path:
    if not (BENCH_VENV / "bin" / "pyinfra").exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(BENCH_VENV / "bin" / "pip"), "install", "--quiet", "ansible-core", "pyinfra"], check=True)
    return BENCH_VENV / "bin"


def render_spec(workdir: Path, desired: provision.Desired) -> dict:
    """slipway's desired state, with each managed file written out for the other tools to copy."""
    managed = {}
    for index, item in enumerate(desired.files.values()):
        source = workdir / f"file{index}"
        source.write_text(item.content)
        managed[item.path] = {"src": str(source), "dest": item.path, "user": item.owner, "group": item.group,
                              "mode": f"{item.mode:o}"}
    return {
        "packages": list(desired.packages),
        "timezone_target": f"/usr/share/zoneinfo/{desired.timezone}",
        "user": desired.deploy_user,
        "home": desired.deploy_home,
        "files": managed,
        "directories": [{"path": d.path, "user": d.owner, "group": d.group, "mode": f"{d.mode:o}"} for d in desired.directories],
    }


def ansible_playbook(spec: dict) -> list:
    tasks = [
        {"name": "daemon.json", "ansible.builtin.copy": _copy(spec["files"]["/etc/docker/daemon.json"])},
        {"name": "packages", "ansible.builtin.apt": {"name": spec["packages"], "state": "present"}},
        {"name": "timezone", "ansible.builtin.file": {"path": "/etc/localtime", "src": spec["timezone_target"],
                                                      "state": "link", "force": True}},
        {"name": "docker", "ansible.builtin.systemd_service": {"name": "docker.service", "enabled": True, "state": "started"}},
        {"name": "deploy user", "ansible.builtin.user": {"name": spec["user"], "groups": ["docker"], "append": True,
                                                         "shell": "/bin/bash", "home": spec["home"]}},
    ]
    tasks += [{"name": f"dir {d['path']}", "ansible.builtin.file": {"path": d["path"], "owner": d["user"], "group": d["group"],
                                                                      "mode": d["mode"], "state": "directory"}}
              for d in spec["directories"]]
    tasks += [{"name": path, "ansible.builtin.copy": _copy(item)}
              for path, item in spec["files"].items() if path != "/etc/docker/daemon.json"]
    tasks.append({"name": "firewall", "ansible.builtin.command": "ufw status verbose", "changed_when": False})
    return [{"hosts": "lab", "become": True, "gather_facts": True, "gather_subset": ["min"], "tasks": tasks}]


def _copy(item: dict) -> dict:
    return {"src": item["src"], "dest": item["dest"], "owner": item["user"], "group": item["group"], "mode": item["mode"]}


def timed(argv: list[str], cwd: Path, env: dict | None = None) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(argv)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed, result.stdout + result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    deployment = config.load(PROJECT / "inventories", "lab")
    host = deployment.inventory.host
    user = deployment.inventory.server.deploy_user
    desired = provision.desired_state(deployment.inventory, PROJECT, "debian", "13", deployment.secret)
    tools = tools_venv()

    with tempfile.TemporaryDirectory(prefix="slipway-bench-") as temporary:
        workdir = Path(temporary)
        spec = render_spec(workdir, desired)
        (workdir / "spec.json").write_text(json.dumps(spec))
        (workdir / "playbook.yml").write_text(yaml.safe_dump(ansible_playbook(spec), sort_keys=False))
        ssh_args = f"-o UserKnownHostsFile={host.known_hosts} -o StrictHostKeyChecking=yes"
        (workdir / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"lab": {
            "ansible_host": host.address, "ansible_port": host.port, "ansible_user": user,
            "ansible_ssh_private_key_file": str(host.key_file), "ansible_ssh_common_args": ssh_args,
            "ansible_python_interpreter": "/usr/bin/python3"}}}}))
        ansible_env = {"ANSIBLE_PIPELINING": "True", "ANSIBLE_HOST_KEY_CHECKING": "True", "PATH": f"{tools}:/usr/bin:/bin",
                       "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"), "HOME": str(Path.home())}
        commands = {
            "fab --version": ([str(BIN / "fab"), "--version"], None),
            "slipway": ([str(BIN / "fab"), "-H", "lab", "provision"], None),
            "ansible": ([str(tools / "ansible-playbook"), "-i", "hosts.yml", "playbook.yml"], ansible_env),
            "pyinfra": ([str(tools / "pyinfra"), "-y", "--sudo", "--ssh-user", user, "--ssh-key", str(host.key_file),
                         "--ssh-port", str(host.port), "--data", f"slipway_spec={workdir / 'spec.json'}",
                         "--data", f"ssh_known_hosts_file={host.known_hosts}", "--data", "ssh_strict_host_key_checking=yes",
                         host.address, str(PROJECT / "benchmarks" / "pyinfra_provision.py")], None),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for name, (argv, env) in commands.items():
            folder = workdir if name in ("ansible", "pyinfra") else PROJECT
            timed(argv, folder, env)  # converge and warm up
            for _ in range(args.runs):
                elapsed, output = timed(argv, folder, env)
                times[name].append(elapsed)
            if name != "fab --version":
                print(f"{name:8} last run says: {_no_op_evidence(name, output)}")

    slipway = statistics.median(times["slipway"])
    print(f"\nno-op provision re-run against the lab target, median of {args.runs} (wall time, whole command):")
    start_up = statistics.median(times.pop("fab --version"))
    print(f"  {'fab --version (start-up only)':<30} {start_up:6.2f}s; slipway's no-op provision is {slipway / start_up:.1f}x that")
    for name, samples in times.items():
        median = statistics.median(samples)
        ratio = "" if name == "slipway" else f"  slipway is {median / slipway:.1f}x faster"
        print(f"  {name:8} {median:6.2f}s  (min {min(samples):.2f}s, max {max(samples):.2f}s){ratio}")


def _no_op_evidence(name: str, output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    if name == "slipway":
        return next((line.strip() for line in reversed(lines) if re.search(r" ok, \d+ changed, ", line)), "?")
    if name == "ansible":
        return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("lab ")), "?")
    operations = sum(line.startswith("--> Starting operation:") for line in lines)
    unchanged = sum(line.strip().endswith("No changes") for line in lines)
    return f"{operations} operations, {unchanged} with no changes"


if __name__ == "__main__":
    main()
