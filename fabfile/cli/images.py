"""Getting a release's images onto the server: shipped from this machine, or pulled from a registry."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path

from ..commands import traffic
from ..commands.state import ServerState, layers_to_leave_out
from ..config import Deployment
from ..errors import SlipwayError
from ..remote import Reporter
from .locked import LockedRun


def local_image_ids(refs: dict[str, str]) -> dict[str, str]:
    """Image ID of each reference on this machine; a missing one stops the deploy before any connection."""
    ids, missing = {}, []
    for ref in dict.fromkeys(refs.values()):
        result = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True)
        if result.returncode == 0:
            ids[ref] = result.stdout.strip()
        else:
            missing.append(ref)
    if missing:
        raise SlipwayError(f"image{'s' if len(missing) > 1 else ''} {', '.join(missing)} not found on this machine; "
                           "build or pull it, or set images.source: registry to pull on the server")
    return ids


def missing_on_server(refs: dict[str, str], local_ids: dict[str, str], state: ServerState) -> list[str]:
    return [ref for ref in dict.fromkeys(refs.values()) if state.image_ids.get(ref) != local_ids[ref]]


def ship(run: LockedRun, reporter: Reporter, deployment: Deployment, refs: dict[str, str], local_ids: dict[str, str],
         state: ServerState) -> dict[str, str]:
    """docker save | docker load over SSH for the images the server lacks, leaving out layers it has."""
    wanted = missing_on_server(refs, local_ids, state)
    with reporter.step(f"ship images ({len(wanted)} of {len(set(refs.values()))} missing)") as step:
        if wanted:
            sent, total = _stream_images(run, wanted, state.layer_chains, deployment.inventory.app.ship_timeout_seconds)
            step.changed = True
            step.detail = f"{', '.join(wanted)}: sent {sent / 1e6:.1f} MB of {total / 1e6:.1f} MB (layers the server has stay here)"
    return local_ids


def _stream_images(run: LockedRun, refs: list[str], chains: set[tuple[str, ...]], limit: int) -> tuple[int, int]:
    with tempfile.TemporaryDirectory(prefix="slipway-ship-") as workdir:
        archive_path = Path(workdir) / "images.tar"
        saved = subprocess.run(["docker", "save", "-o", str(archive_path), *refs], capture_output=True, text=True)
        if saved.returncode != 0:
            raise SlipwayError(f"docker save {' '.join(refs)} failed: {saved.stderr.strip()}")
        with tarfile.open(archive_path) as archive:
            manifest = json.load(archive.extractfile("manifest.json"))
            diff_ids = {image["Config"]: json.load(archive.extractfile(image["Config"]))["rootfs"]["diff_ids"]
                        for image in manifest}
            left_out = layers_to_leave_out(manifest, diff_ids, chains)
            members = [member for member in archive.getmembers() if member.name not in left_out]
            read_end, write_end = os.pipe()
            writer = threading.Thread(target=_write_archive, args=(archive, members, write_end), daemon=True)
            writer.start()
            with os.fdopen(read_end, "rb") as stream:
                run(["docker", "load", "-q"], stdin=stream, limit=limit)
            writer.join()
        return sum(m.size for m in members), archive_path.stat().st_size


def _write_archive(archive: tarfile.TarFile, members: list[tarfile.TarInfo], descriptor: int) -> None:
    try:
        with os.fdopen(descriptor, "wb") as pipe, tarfile.open(fileobj=pipe, mode="w|") as out:
            for member in members:
                out.addfile(member, archive.extractfile(member) if member.isfile() else None)
    except BrokenPipeError:
        pass  # docker load stopped reading: its own error is what gets reported


def pull(run: LockedRun, reporter: Reporter, deployment: Deployment, refs: dict[str, str]) -> dict[str, str]:
    """docker pull on the server; the login (password on stdin) is undone afterwards, leaving no credentials behind."""
    images = deployment.inventory.images
    wanted = list(dict.fromkeys(refs.values()))
    with reporter.step(f"pull images from {images.registry}") as step:
        login = images.username and images.password_secret
        if login:
            run(["docker", "login", "--username", images.username, "--password-stdin", images.registry],
                stdin=deployment.secret(images.password_secret))
        try:
            output = run(traffic.pull_command(wanted), limit=deployment.inventory.app.ship_timeout_seconds).stdout
        finally:
            if login:
                run(["docker", "logout", images.registry], check=False)
        pulled = dict(line.rsplit(" ", 1) for line in output.splitlines() if line.count(" ") == 1)
        absent = [ref for ref in wanted if not pulled.get(ref, "").startswith("sha256:")]
        if absent:
            raise SlipwayError(f"{deployment.name}: the pull reported no image ID for {', '.join(absent)}")
        step.changed, step.detail = True, ", ".join(wanted)
    return pulled
