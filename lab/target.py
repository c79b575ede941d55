"""The lab target: a Debian container booting systemd and sshd like a fresh cloud VM, its images, the lab's other
hosts beside it, and the files (known_hosts, lab inventory) that make `fab -H lab` work at once."""

from __future__ import annotations

import io
from pathlib import Path

from invoke import Context

from fabfile import config, ssh
from fabfile.commands.layout import layout_of
from fabfile.errors import LocalCommandFailed
from fabfile.remote import Reporter
from fabfile.tasking import project_dir, run_local

from . import commands
from .containers import (answers_ssh, build_base_image, container_state, create_target, ensure_key, image_id,
                         public_key, unreachable_ssh_report, wait_for_ssh)
from .paths import (LAB_INVENTORY, TEMPLATES, inventory_files, key_file, known_hosts_file, names, pebble_file,
                    rest_ca_file, render_template)
from .secrets_file import lab_secrets
from .services import ensure_backup_host, ensure_pebble, ensure_rest_server


def ensure_target(c: Context, fresh: bool = False, reporter: Reporter | None = None) -> dict:
    """Bring the lab target up (recreated from nothing with FRESH) and return its status."""
    reporter = reporter or Reporter("lab")
    lab = names(c)
    with reporter.step("docker engine answers"):
        run_local(c, "docker info --format '{{.ServerVersion}}'")
    _ensure_images(c, lab, reporter)
    with reporter.step("lab SSH key") as step:
        step.changed = ensure_key(key_file(c))
    if fresh:
        with reporter.step(f"remove {lab.target}, {lab.backup_host}, {lab.rest_server} and {lab.pebble} "
                           "(--fresh)") as step:
            for command in (commands.remove_target_commands(lab) + commands.remove_backup_host_commands(lab)
                            + [commands.remove_rest_server_command(lab), commands.remove_pebble_command(lab)]):
                run_local(c, command)
            step.changed = True
    with reporter.step(f"target container {lab.target}") as step:
        key = Path(f"{key_file(c)}.pub").read_text()
        fingerprint = public_key(key).fingerprint
        step.changed, step.detail = _ensure_target_container(c, lab, fingerprint, key)
    with reporter.step(f"backup host {lab.backup_host} on {lab.network}") as step:
        step.changed, step.detail = ensure_backup_host(c, lab, fingerprint)
    with reporter.step(f"REST offsite server {lab.rest_server} on {lab.network}") as step:
        step.changed, step.detail = ensure_rest_server(c, lab, fingerprint)
    with reporter.step(f"ACME CA {lab.pebble} on {lab.network}, {lab.target} as {', '.join(commands.TARGET_DOMAINS)}") as step:
        step.changed, step.detail = ensure_pebble(c, lab)
    status = target_status(c)
    with reporter.step("known_hosts and inventories/lab.yaml") as step:
        step.changed = write_lab_files(c, status)
    return status


def _ensure_images(c: Context, lab: commands.LabNames, reporter: Reporter) -> None:
    """The base image (debootstrap, once), then the lab's and the example stack's images built on it."""
    with reporter.step(f"base image {lab.base_image}") as step:
        if not image_id(c, lab.base_image):
            build_base_image(c, lab)
            step.changed = True
    for what, image, context, args in (
            ("target image", lab.target_image, "target", {}),
            ("REST server image", lab.rest_server_image, "rest-server", {"ADDRESS": commands.REST_SERVER_ADDRESS}),
            ("ACME CA image", lab.pebble_image, "pebble", {})):
        with reporter.step(f"{what} {image}") as step:
            before = image_id(c, image)
            run_local(c, commands.build_command(image, TEMPLATES / context, {"BASE_IMAGE": lab.base_image, **args}))
            step.changed = image_id(c, image) != before
    with reporter.step(f"example stack images ({len(commands.DEMO_IMAGES)})") as step:
        before = {image.ref: image_id(c, image.ref) for image in commands.DEMO_IMAGES}
        for image in commands.DEMO_IMAGES:
            run_local(c, commands.build_command(image.ref, project_dir(c) / "examples" / image.context,
                                                {"BASE_IMAGE": lab.base_image, **dict(image.build_args)}))
        changed = [ref for ref, image_id_before in before.items() if image_id(c, ref) != image_id_before]
        step.changed, step.detail = bool(changed), ", ".join(changed)


def _ensure_target_container(c: Context, lab: commands.LabNames, fingerprint: str, key: str) -> tuple[bool, str]:
    """The target running, made for this lab key, its SSH answering through the published port."""
    state, made_for = container_state(c, lab)
    detail = ""
    if state is not None and made_for != fingerprint:
        # Left by another checkout (or an older lab): its root trusts a key we do not hold.
        for command in commands.remove_target_commands(lab):
            run_local(c, command)
        state, detail = None, "replaced one made for another lab key; "
    if state is None:
        create_target(c, lab, fingerprint, key)
        detail += "created"
    elif state != "running":
        run_local(c, f"docker start {lab.target}")
        wait_for_ssh(c, lab.target)
        detail = "started"
    else:
        detail = "running"
    if not answers_ssh(c, lab.target) and state is None:
        # Seen once on a machine restored from a snapshot: sshd listened inside, yet every
        # connection through the published port was reset. A new container got a working path.
        for command in commands.remove_target_commands(lab):
            run_local(c, command)
        create_target(c, lab, fingerprint, key)
        detail += ", re-created (its SSH port did not answer)"
    if not answers_ssh(c, lab.target):
        raise LocalCommandFailed(unreachable_ssh_report(c, lab.target))
    return state != "running", detail


def trust_offsite_key(c: Context, reporter: Reporter) -> str:
    """What the operator does once after provision: the server's offsite key goes into the backup
    account's authorized_keys (read from the target's disk, as from a console)."""
    lab = names(c)
    inventory = config.load(inventory_files(c)[0].parent, LAB_INVENTORY).inventory
    key_path = layout_of(inventory).offsite_key + ".pub"
    with reporter.step(f"authorize {lab.target}'s offsite key on {lab.backup_host}") as step:
        public_key = " ".join(run_local(c, commands.exec_command(lab.target, f"cat {key_path}")).stdout.split()[:2])
        run_local(c, commands.exec_command(lab.backup_host, commands.AUTHORIZE_BACKUP_KEY, interactive=True),
                  in_stream=io.StringIO(public_key + "\n"))
        step.changed, step.detail = True, public_key[:40] + "..."
    return public_key


def target_status(c: Context) -> dict:
    lab = names(c)
    state, _ = container_state(c, lab)
    ports = commands.parse_published_ports(run_local(c, commands.port_command(lab.target)).stdout) if state == "running" else {}
    rest_state, _ = container_state(c, lab, lab.rest_server)
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


def write_lab_files(c: Context, status: dict) -> bool:
    """Record the target's host key (read from inside it, as from a cloud console) and the lab inventory."""
    host_public_key = run_local(c, commands.exec_command(status["container"], commands.READ_HOST_KEY)).stdout
    host_key = public_key(host_public_key)
    backup_host_key = run_local(c, commands.exec_command(status["backup_host"]["container"], commands.READ_HOST_KEY)).stdout
    inventory_file, secrets_file = inventory_files(c)
    backup_host = {**status["backup_host"], "host_key": " ".join(backup_host_key.split()[:2])}
    wanted = {
        known_hosts_file(c): ssh.known_hosts_with("", ssh.known_hosts_name("127.0.0.1", status["ssh_port"]), host_key),
        inventory_file: render_template("inventory.yaml.j2", lab=status, backup_host=backup_host),
        secrets_file: lab_secrets(c, secrets_file),
    }
    changed = False
    for path, text in wanted.items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            ssh.write_private_file(path, text)
            changed = True
    return changed
