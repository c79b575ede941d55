"""`inv lab.up|down|status|trust-offsite-key`: a real Debian target host in Docker, built offline.

The base image comes from debootstrap (only Debian's archive is reachable, no
image registry); the target boots systemd and sshd like a fresh cloud VM, and
its SSH, HTTP and HTTPS ports are published on free loopback ports.
`lab.up` writes inventories/lab.yaml so that `fab -H lab ...` works at once.
Only the checkout's tasks.py adds these tasks (see lab/__init__.py).
"""

from __future__ import annotations

import base64
import io
import os
import secrets
import socket
import tempfile
import time
from json import dumps as to_json
from pathlib import Path

import paramiko
from dotenv import dotenv_values
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from invoke import Collection, Context

from fabfile import config, render, ssh
from fabfile.tasking import operator_task, project_dir, run_local
from fabfile.commands import backup as backup_commands
from fabfile.errors import LocalCommandFailed, SlipwayError
from fabfile.remote import Reporter

from . import commands

SSH_READY_TIMEOUT_SECONDS = 90
REST_READY_TIMEOUT_SECONDS = 30
SSH_BANNER_TIMEOUT_SECONDS = 30
LAB_INVENTORY = "lab"
# The images' build contexts and the lab inventory's templates: the lab's own, beside this module.
TEMPLATES = Path(__file__).resolve().parent / "templates"


def render_template(name: str, **context) -> str:
    """A template of TEMPLATES, rendered the way slipway renders its own (StrictUndefined, same whitespace)."""
    # render.render reads a project's templates/ folder first: the lab is that project.
    return render.render(TEMPLATES.parent, name, **context)


def names(c: Context) -> commands.LabNames:
    return commands.LabNames(prefix=c.config.slipway.lab.prefix, suite=c.config.slipway.lab.suite)


def state_dir(c: Context) -> Path:
    return project_dir(c) / c.config.slipway.lab.state_dir


def key_file(c: Context) -> Path:
    return state_dir(c) / "id_ed25519"


def known_hosts_file(c: Context) -> Path:
    return state_dir(c) / "known_hosts"


def inventory_files(c: Context) -> tuple[Path, Path]:
    directory = project_dir(c) / c.config.slipway.inventory_dir
    return directory / f"{LAB_INVENTORY}.yaml", directory / f"{LAB_INVENTORY}.env"


def ensure_target(c: Context, fresh: bool = False, reporter: Reporter | None = None) -> dict:
    """Bring the lab target up (recreated from nothing with FRESH) and return its status."""
    reporter = reporter or Reporter("lab")
    lab = names(c)
    with reporter.step("docker engine answers"):
        run_local(c, "docker info --format '{{.ServerVersion}}'")
    with reporter.step(f"base image {lab.base_image}") as step:
        if not _image_id(c, lab.base_image):
            _build_base_image(c, lab)
            step.changed = True
    with reporter.step(f"target image {lab.target_image}") as step:
        before = _image_id(c, lab.target_image)
        context = TEMPLATES / "target"
        run_local(c, commands.build_command(lab.target_image, context, {"BASE_IMAGE": lab.base_image}))
        step.changed = _image_id(c, lab.target_image) != before
    with reporter.step(f"REST server image {lab.rest_server_image}") as step:
        before = _image_id(c, lab.rest_server_image)
        context = TEMPLATES / "rest-server"
        run_local(c, commands.build_command(lab.rest_server_image, context,
                                            {"BASE_IMAGE": lab.base_image, "ADDRESS": commands.REST_SERVER_ADDRESS}))
        step.changed = _image_id(c, lab.rest_server_image) != before
    with reporter.step(f"ACME CA image {lab.pebble_image}") as step:
        before = _image_id(c, lab.pebble_image)
        run_local(c, commands.build_command(lab.pebble_image, TEMPLATES / "pebble", {"BASE_IMAGE": lab.base_image}))
        step.changed = _image_id(c, lab.pebble_image) != before
    with reporter.step(f"example stack images ({len(commands.DEMO_IMAGES)})") as step:
        before = {image.ref: _image_id(c, image.ref) for image in commands.DEMO_IMAGES}
        for image in commands.DEMO_IMAGES:
            run_local(c, commands.build_command(image.ref, project_dir(c) / "examples" / image.context,
                                                {"BASE_IMAGE": lab.base_image, **dict(image.build_args)}))
        changed = [ref for ref, image_id in before.items() if _image_id(c, ref) != image_id]
        step.changed, step.detail = bool(changed), ", ".join(changed)
    with reporter.step("lab SSH key") as step:
        step.changed = _ensure_key(key_file(c))
    if fresh:
        with reporter.step(f"remove {lab.target}, {lab.backup_host}, {lab.rest_server} and {lab.pebble} "
                           "(--fresh)") as step:
            for command in (commands.remove_target_commands(lab) + commands.remove_backup_host_commands(lab)
                            + [commands.remove_rest_server_command(lab), commands.remove_pebble_command(lab)]):
                run_local(c, command)
            step.changed = True
    with reporter.step(f"target container {lab.target}") as step:
        public_key = Path(f"{key_file(c)}.pub").read_text()
        fingerprint = _public_key(public_key).fingerprint
        state, made_for = _container_state(c, lab)
        if state is not None and made_for != fingerprint:
            # Left by another checkout (or an older lab): its root trusts a key we do not hold.
            for command in commands.remove_target_commands(lab):
                run_local(c, command)
            state, step.detail = None, "replaced one made for another lab key; "
        if state is None:
            _create_target(c, lab, fingerprint, public_key)
            step.detail += "created"
        elif state != "running":
            run_local(c, f"docker start {lab.target}")
            _wait_for_ssh(c, lab.target)
            step.detail = "started"
        else:
            step.detail = "running"
        step.changed = state != "running"
        if not _answers_ssh(c, lab.target) and state is None:
            # Seen once on a machine restored from a snapshot: sshd listened inside, yet every
            # connection through the published port was reset. A new container got a working path.
            for command in commands.remove_target_commands(lab):
                run_local(c, command)
            _create_target(c, lab, fingerprint, public_key)
            step.detail += ", re-created (its SSH port did not answer)"
        if not _answers_ssh(c, lab.target):
            raise LocalCommandFailed(_unreachable_ssh_report(c, lab.target))
    with reporter.step(f"backup host {lab.backup_host} on {lab.network}") as step:
        step.changed, step.detail = _ensure_backup_host(c, lab, fingerprint)
    with reporter.step(f"REST offsite server {lab.rest_server} on {lab.network}") as step:
        step.changed, step.detail = _ensure_rest_server(c, lab, fingerprint)
    with reporter.step(f"ACME CA {lab.pebble} on {lab.network}, {lab.target} as {', '.join(commands.TARGET_DOMAINS)}") as step:
        step.changed, step.detail = _ensure_pebble(c, lab)
    status = target_status(c)
    with reporter.step("known_hosts and inventories/lab.yaml") as step:
        step.changed = _write_lab_files(c, status)
    return status


def _ensure_backup_host(c: Context, lab: commands.LabNames, fingerprint: str) -> tuple[bool, str]:
    """The lab network, the backup host on it (made for this lab key), and the target joined to it."""
    done = []
    if c.run(commands.network_members_command(lab), hide=True, warn=True, in_stream=False).failed:
        run_local(c, commands.create_network_command(lab))
        done.append(f"created {lab.network}")
    state, made_for = _container_state(c, lab, lab.backup_host)
    if state is not None and made_for != fingerprint:
        # Its repository belongs to another checkout's lab (another password): start from nothing.
        for command in commands.remove_backup_host_commands(lab):
            run_local(c, command)
        state = None
    if state is None:
        run_local(c, commands.run_backup_host_command(lab, fingerprint))
        done.append("created")
    elif state != "running":
        run_local(c, f"docker start {lab.backup_host}")
        done.append("started")
    if state != "running":
        _wait_for_ssh(c, lab.backup_host)
        run_local(c, commands.exec_command(lab.backup_host, commands.PREPARE_BACKUP_ACCOUNT))
    return bool(done), ", ".join(done) or "running"


def _ensure_rest_server(c: Context, lab: commands.LabNames, fingerprint: str) -> tuple[bool, str]:
    """The REST server on the lab network (made for this lab key), its htpasswd files holding the lab
    secrets file's passwords (written and checked through stdin), both its instances answering, and its
    certificate on disk."""
    done = []
    state, made_for = _container_state(c, lab, lab.rest_server)
    if state is not None and made_for != fingerprint:
        run_local(c, commands.remove_rest_server_command(lab))
        state = None
    if state is None:
        run_local(c, commands.run_rest_server_command(lab, fingerprint))
        done.append("created")
    elif state != "running":
        run_local(c, f"docker start {lab.rest_server}")
        done.append("started")
    secrets_values = _ensure_lab_secrets(c)
    rewritten = []
    for which, user, secret_name in commands.REST_INSTANCES:
        password = secrets_values[secret_name] + "\n"
        matches = commands.exec_command(lab.rest_server, commands.htpasswd_matches_command(which, user),
                                        interactive=True)
        if state is not None and c.run(matches, hide=True, warn=True, in_stream=io.StringIO(password)).ok:
            continue
        run_local(c, commands.exec_command(lab.rest_server, commands.write_htpasswd_command(which, user),
                                           interactive=True), in_stream=io.StringIO(password))
        rewritten.append(which)
    if rewritten and state is not None:
        # The lab's secrets changed under a running server: it reads the new files when it starts.
        run_local(c, f"docker restart {lab.rest_server}")
        done.append(f"{' and '.join(rewritten)} htpasswd rewritten")
    deadline = time.monotonic() + REST_READY_TIMEOUT_SECONDS
    while c.run(commands.exec_command(lab.rest_server, commands.REST_READY_CHECK), hide=True, warn=True,
                in_stream=False).failed:
        if time.monotonic() > deadline:
            raise LocalCommandFailed(f"{lab.rest_server}: rest-server not answering after "
                                     f"{REST_READY_TIMEOUT_SECONDS}s (docker logs {lab.rest_server})")
        time.sleep(0.5)
    certificate = run_local(c, commands.exec_command(lab.rest_server, commands.REST_CERTIFICATE)).stdout
    path = rest_ca_file(c)
    if not path.exists() or path.read_text() != certificate:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(certificate)
        done.append(f"{path.name} written")
    return bool(done), ", ".join(done) or "running"


def rest_ca_file(c: Context) -> Path:
    """The REST server's own certificate: what restic checks it with (the REST inventory's ca_bundle)."""
    return state_dir(c) / "rest-ca.pem"


def _ensure_pebble(c: Context, lab: commands.LabNames) -> tuple[bool, str]:
    """Pebble on the lab network, the target on it under the app's domains, and Pebble's certificates on disk."""
    done = []
    state, _ = _container_state(c, lab, lab.pebble)
    if state is None:
        run_local(c, commands.run_pebble_command(lab))
        done.append("created")
    elif state != "running":
        run_local(c, f"docker start {lab.pebble}")
        done.append("started")
    aliases = set(run_local(c, commands.aliases_command(lab, lab.target)).stdout.split())
    if not aliases.issuperset(commands.TARGET_DOMAINS):
        if lab.target in run_local(c, commands.network_members_command(lab)).stdout.split():
            run_local(c, commands.disconnect_command(lab, lab.target))
        run_local(c, commands.connect_command(lab, lab.target, commands.TARGET_DOMAINS))
        done.append(f"{lab.target} joined")
    # Pebble makes a new root at every start: what clients trust is read again each time.
    wanted = {pebble_file(c, "api"): run_local(c, commands.exec_command(lab.pebble, commands.PEBBLE_API_CERTIFICATE)).stdout,
              pebble_file(c, "root"): run_local(c, commands.exec_command(lab.pebble, commands.PEBBLE_ROOT)).stdout}
    for path, text in wanted.items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            done.append(f"{path.name} written")
    return bool(done), ", ".join(done) or "running"


def pebble_file(c: Context, which: str) -> Path:
    """WHICH api: the certificate of Pebble's own API (the lab inventory's tls.ca_bundle); root: the root
    the certificates it issues chain to (what a client of the lab's site trusts)."""
    return state_dir(c) / f"pebble-{which}.pem"


def trust_offsite_key(c: Context, reporter: Reporter) -> str:
    """What the operator does once after provision: the server's offsite key goes into the backup
    account's authorized_keys (read from the target's disk, as from a console)."""
    lab = names(c)
    inventory = config.load(inventory_files(c)[0].parent, LAB_INVENTORY).inventory
    key_path = backup_commands.paths_of(inventory).offsite_key + ".pub"
    with reporter.step(f"authorize {lab.target}'s offsite key on {lab.backup_host}") as step:
        public_key = " ".join(run_local(c, commands.exec_command(lab.target, f"cat {key_path}")).stdout.split()[:2])
        run_local(c, commands.exec_command(lab.backup_host, commands.AUTHORIZE_BACKUP_KEY, interactive=True),
                  in_stream=io.StringIO(public_key + "\n"))
        step.changed, step.detail = True, public_key[:40] + "..."
    return public_key


def target_status(c: Context) -> dict:
    lab = names(c)
    state, _ = _container_state(c, lab)
    ports = commands.parse_published_ports(run_local(c, commands.port_command(lab.target)).stdout) if state == "running" else {}
    rest_state, _ = _container_state(c, lab, lab.rest_server)
    rest_ports = commands.parse_published_ports(run_local(c, commands.port_command(lab.rest_server)).stdout,
                                                {"admin": commands.REST_ADMIN_PORT}) if rest_state == "running" else {}
    inventory_file, _ = inventory_files(c)
    return {
        "container": lab.target,
        "state": state or "absent",
        "image": lab.target_image,
        "ssh_port": ports.get("ssh"),
        "http_port": ports.get("http"),
        "https_port": ports.get("https"),
        "address": "127.0.0.1",
        "user": "root",
        "key_file": str(key_file(c)),
        "known_hosts": str(known_hosts_file(c)),
        "inventory": str(inventory_file),
        "backup_host": {"container": lab.backup_host, "network": lab.network, "address": commands.BACKUP_HOST_ADDRESS,
                        "user": commands.BACKUP_USER, "root": commands.BACKUP_ROOT},
        # A REST offsite repository URL is one of these and a repository's path (see tests/lab/test_backup.py).
        "rest_server": {"container": lab.rest_server, "address": commands.REST_SERVER_ADDRESS,
                        "url": f"https://{commands.REST_SERVER_ADDRESS}:{commands.REST_APPEND_ONLY_PORT}",
                        "admin_url": f"https://127.0.0.1:{rest_ports['admin']}" if "admin" in rest_ports else None,
                        "user": commands.REST_USER, "password_secret": commands.REST_PASSWORD_SECRET,
                        "admin_user": commands.REST_ADMIN_USER,
                        "admin_password_secret": commands.REST_ADMIN_PASSWORD_SECRET,
                        "ca_bundle": str(rest_ca_file(c))},
        "domains": list(commands.TARGET_DOMAINS),
        "acme": {"container": lab.pebble, "address": commands.PEBBLE_ADDRESS, "directory": commands.PEBBLE_DIRECTORY,
                 "api_certificate": str(pebble_file(c, "api")), "root_certificate": str(pebble_file(c, "root"))},
    }


def _image_id(c: Context, image: str) -> str | None:
    result = c.run(commands.image_exists_command(image), hide=True, warn=True, in_stream=False)
    return result.stdout.strip() if result.ok else None


def _container_state(c: Context, lab: commands.LabNames, container: str = "") -> tuple[str | None, str]:
    """(state, key fingerprint label) of the target (or CONTAINER), (None, "") when there is none."""
    result = c.run(commands.state_command(lab, container), hide=True, warn=True, in_stream=False)
    if result.failed:
        return None, ""
    state, _, made_for = result.stdout.strip().partition(" ")
    return state, made_for


def _public_key(line: str) -> paramiko.PKey:
    """A key from an OpenSSH `TYPE BASE64 [COMMENT]` line."""
    key_type, key_base64 = line.split()[:2]
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(key_base64))


def _build_base_image(c: Context, lab: commands.LabNames) -> None:
    if os.geteuid() != 0:
        raise SlipwayError(f"building {lab.base_image} runs debootstrap, which needs root; run lab.up as root")
    with tempfile.TemporaryDirectory(prefix="slipway-rootfs-", dir="/var/tmp") as workdir:
        rootfs = Path(workdir) / "rootfs"
        run_local(c, commands.debootstrap_command(lab.suite, rootfs, c.config.slipway.lab.mirror))
        run_local(c, commands.import_command(rootfs, lab.base_image))


def _ensure_key(path: Path) -> bool:
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = private_key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    ssh.write_private_file(path, pem)
    Path(f"{path}.pub").write_text(f"{public.decode()} slipway-lab\n")
    return True


def _create_target(c: Context, lab: commands.LabNames, fingerprint: str, public_key: str) -> None:
    run_local(c, commands.run_target_command(lab, fingerprint))
    _wait_for_ssh(c, lab.target)
    run_local(c, commands.exec_command(lab.target, commands.AUTHORIZE_ROOT_KEY, interactive=True),
              in_stream=io.StringIO(public_key))


def _ssh_port(c: Context, container: str) -> int | None:
    return commands.parse_published_ports(run_local(c, commands.port_command(container)).stdout).get("ssh")


def _answers_ssh(c: Context, container: str) -> bool:
    """Whether an SSH banner comes back through the published port within SSH_BANNER_TIMEOUT_SECONDS."""
    port = _ssh_port(c, container)
    deadline = time.monotonic() + SSH_BANNER_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
                if probe.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


def _unreachable_ssh_report(c: Context, container: str) -> str:
    """One line: the dead port, and what the container's address and listening sockets were."""
    inside = c.run(commands.exec_command(container, commands.SSH_LISTENERS), hide=True, warn=True, in_stream=False)
    address = c.run(commands.address_command(container), hide=True, warn=True, in_stream=False)
    listening = " | ".join(" ".join(line.split()) for line in (inside.stdout or inside.stderr).splitlines())
    direct = "?"
    for ip in address.stdout.split():
        try:
            with socket.create_connection((ip, 22), timeout=5) as probe:
                direct = f"{ip}:22 answers {probe.recv(64)[:20]!r}"
        except OSError as error:
            direct = f"{ip}:22 fails too ({error})"
    return (f"{container}: sshd runs inside, but 127.0.0.1:{_ssh_port(c, container)} gave no SSH banner in "
            f"{SSH_BANNER_TIMEOUT_SECONDS}s, even from a re-created container; directly, {direct}; "
            f"listening inside: {listening or '?'}")


def _wait_for_ssh(c: Context, container: str) -> None:
    deadline = time.monotonic() + SSH_READY_TIMEOUT_SECONDS
    check = commands.exec_command(container, commands.SSH_READY_CHECK)
    while c.run(check, hide=True, warn=True, in_stream=False).failed:
        if time.monotonic() > deadline:
            raise LocalCommandFailed(f"{container}: sshd not running after {SSH_READY_TIMEOUT_SECONDS}s (docker logs {container})")
        time.sleep(0.5)


def _write_lab_files(c: Context, status: dict) -> bool:
    """Record the target's host key (read from inside it, as from a cloud console) and the lab inventory."""
    host_public_key = run_local(c, commands.exec_command(status["container"], commands.READ_HOST_KEY)).stdout
    host_key = _public_key(host_public_key)
    backup_host_key = run_local(c, commands.exec_command(status["backup_host"]["container"], commands.READ_HOST_KEY)).stdout
    inventory_file, secrets_file = inventory_files(c)
    backup_host = {**status["backup_host"], "host_key": " ".join(backup_host_key.split()[:2])}
    wanted = {
        known_hosts_file(c): ssh.known_hosts_with("", ssh.known_hosts_name("127.0.0.1", status["ssh_port"]), host_key),
        inventory_file: render_template("inventory.yaml.j2", lab=status, backup_host=backup_host),
        secrets_file: _lab_secrets(c, secrets_file),
    }
    changed = False
    for path, text in wanted.items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            ssh.write_private_file(path, text)
            changed = True
    return changed


def _ensure_lab_secrets(c: Context) -> dict[str, str]:
    """The lab's secrets file written now (the REST server's htpasswd files are made from it before the lab
    files are), and its values."""
    _, secrets_file = inventory_files(c)
    text = _lab_secrets(c, secrets_file)
    if not secrets_file.exists() or secrets_file.read_text() != text:
        secrets_file.parent.mkdir(parents=True, exist_ok=True)
        ssh.write_private_file(secrets_file, text)
    return {key: value or "" for key, value in dotenv_values(stream=io.StringIO(text)).items()}


def _lab_secrets(c: Context, secrets_file: Path) -> str:
    """The lab's secrets file: values made once are kept; a secret the lab newly needs is added."""
    made = render_template("secrets.env.j2", password=secrets.token_urlsafe)
    if not secrets_file.exists():
        return made
    text = secrets_file.read_text()
    kept = dotenv_values(secrets_file)
    added = [line for line in made.splitlines(keepends=True) if "=" in line and not line.startswith("#")
             and line.split("=", 1)[0] not in kept]
    return text + "".join(added)


@operator_task(name="trust-offsite-key")
def trust_offsite(c):
    """Authorize the provisioned target's offsite backup key on the lab's backup host (the operator's step)."""
    reporter = Reporter("lab")
    trust_offsite_key(c, reporter)
    print(reporter.summary())


@operator_task
def up(c, fresh=False):
    """Start the lab target (build images when missing); --fresh recreates it from nothing."""
    reporter = Reporter("lab")
    status = ensure_target(c, fresh=fresh, reporter=reporter)
    print(reporter.summary())
    print(f"lab target up: ssh root@127.0.0.1 -p {status['ssh_port']} -i {status['key_file']}; "
          f"http://127.0.0.1:{status['http_port']}/ ; try: fab -H lab facts")


@operator_task(help={"all": "the backup hosts (and the offsite copies on them) and the ACME CA too"})
def down(c, all=False):
    """Remove the lab target and its Docker volume (images and, without --all, the backup hosts and CA are kept)."""
    reporter = Reporter("lab")
    lab = names(c)
    others = commands.remove_backup_host_commands(lab) + [commands.remove_rest_server_command(lab),
                                                          commands.remove_pebble_command(lab)]
    for command in commands.remove_target_commands(lab) + (others if all else []):
        with reporter.step(command):
            run_local(c, command)
    print(reporter.summary())


@operator_task(name="status")
def show_status(c, json=False):
    """Show the lab target: container state, published ports, key files (--json for scripts)."""
    status = target_status(c)
    if json:
        print(to_json(status))
    else:
        for key, value in status.items():
            print(f"{key:<12} {value if value is not None else '-'}")


namespace = Collection("lab", up, down, show_status, trust_offsite)
# Added to a root collection that has a `slipway` of its own, these defaults must be merged into the
# root's (tasks.py does): Invoke gives a task the root's top-level keys over its sub-collection's.
namespace.configure({
    "slipway": {
        "lab": {
            "prefix": "slipway-lab",
            "suite": "trixie",
            # Empty: debootstrap's own default mirror.
            "mirror": "",
            "state_dir": ".lab",
        },
    },
})
