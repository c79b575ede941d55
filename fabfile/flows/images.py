"""Getting a release's images onto the server: shipped from this machine, or pulled from a registry."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path

from ..commands import traffic
from ..commands.archive import blob_path, layers_to_leave_out, oci_layout
from ..commands.layout import layout_of
from ..commands.shell import script
from ..commands.state import ServerState
from ..config import Deployment
from ..errors import SlipwayError
from ..remote import Reporter
from .locked import LockedRun


def local_image_ids(refs: dict[str, str]) -> dict[str, str]:
    """Image ID of each reference on this machine; a missing one stops the deploy before any connection."""
    ids, missing = {}, []
    # At once: each docker call costs tens of milliseconds of the deploy's start.
    asked = {ref: subprocess.Popen(["docker", "image", "inspect", "--format", "{{.Id}}", ref], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
             for ref in dict.fromkeys(refs.values())}
    for ref, inspect in asked.items():
        found = inspect.communicate()[0].strip()
        if inspect.returncode == 0:
            ids[ref] = found
        else:
            missing.append(ref)
    if missing:
        raise SlipwayError(f"image{'s' if len(missing) > 1 else ''} {', '.join(missing)} not found on this machine; "
                           "build or pull it, or set images.source: registry to pull on the server")
    return ids


def missing_on_server(refs: dict[str, str], local_ids: dict[str, str], state: ServerState) -> list[str]:
    """Refs whose image on the server is not the local one (by ID, or as slipway shipped it)."""
    def present(ref: str) -> bool:
        server_id = state.image_ids.get(ref)
        return server_id is not None and server_id in {local_ids[ref], *state.shipped.get(local_ids[ref], ())}
    return [ref for ref in dict.fromkeys(refs.values()) if not present(ref)]


def ship(run: LockedRun, reporter: Reporter, deployment: Deployment, refs: dict[str, str], local_ids: dict[str, str],
         state: ServerState) -> dict[str, str]:
    """docker save | docker load over SSH for the images the server lacks, leaving out layers it has.
    Returns the server's image ID of every ref."""
    wanted = missing_on_server(refs, local_ids, state)
    server_ids = {ref: state.image_ids[ref] for ref in dict.fromkeys(refs.values()) if ref not in wanted}
    with reporter.step(f"ship images ({len(wanted)} of {len(set(refs.values()))} missing)") as step:
        if wanted:
            load = script("load", layout_of(deployment.inventory).shipped_images,
                          *(f"{ref}|{local_ids[ref]}" for ref in wanted))
            loaded, sent, total = _stream_images(run, wanted, state, load, deployment.inventory.app.ship_timeout_seconds)
            server_ids.update(loaded)
            step.changed = True
            step.detail = (f"{', '.join(wanted)}: sent {sent / 1e6:.1f} MB of {total / 1e6:.1f} MB (layers the server "
                           f"has stay here{'; an OCI layout for the containerd image store' if state.containerd_store else ''})")
    return server_ids


def _stream_images(run: LockedRun, refs: list[str], state: ServerState, load: list[str],
                   limit: int) -> tuple[dict[str, str], int, int]:
    with tempfile.TemporaryDirectory(prefix="slipway-ship-") as workdir:
        archive_path = Path(workdir) / "images.tar"
        saved = subprocess.run(["docker", "save", "-o", str(archive_path), *refs], capture_output=True, text=True)
        if saved.returncode != 0:
            raise SlipwayError(f"docker save {' '.join(refs)} failed: {saved.stderr.strip()}")
        with tarfile.open(archive_path) as archive:
            members = _oci_members(archive, refs, state) if state.containerd_store else _classic_members(archive, state)
            read_end, write_end = os.pipe()
            writer = threading.Thread(target=_write_archive, args=(archive, members, write_end), daemon=True)
            writer.start()
            with os.fdopen(read_end, "rb") as stream:
                output = run(load, stdin=stream, limit=limit).stdout
            writer.join()
        return _reported_ids(output, refs, "docker load"), sum(size for _, size in members), archive_path.stat().st_size


def _reported_ids(output: str, refs: list[str], what: str) -> dict[str, str]:
    """The `REF ID` lines load.sh and pull.sh print; every ref must have an image ID."""
    ids = dict(line.rsplit(" ", 1) for line in output.splitlines() if line.count(" ") == 1)
    absent = [ref for ref in refs if not ids.get(ref, "").startswith("sha256:")]
    if absent:
        raise SlipwayError(f"{what} reported no image ID for {', '.join(absent)}")
    return ids


# What goes into the archive sent: (its name there, a member of the local archive or bytes made here), its size.
Member = tuple[tuple[str, tarfile.TarInfo | bytes], int]


def _classic_members(archive: tarfile.TarFile, state: ServerState) -> list[Member]:
    manifest = json.load(archive.extractfile("manifest.json"))
    diff_ids = {image["Config"]: json.load(archive.extractfile(image["Config"]))["rootfs"]["diff_ids"] for image in manifest}
    left_out = layers_to_leave_out(manifest, diff_ids, state.layer_chains)
    return [((member.name, member), member.size) for member in archive.getmembers() if member.name not in left_out]


def _oci_members(archive: tarfile.TarFile, refs: list[str], state: ServerState) -> list[Member]:
    """The local `docker save` archive as an OCI layout, without the layers the server has.
    Its layer files are uncompressed tars, so each one's digest is its diff ID."""
    images, layer_files = [], {}
    for image in json.load(archive.extractfile("manifest.json")):
        config = archive.extractfile(image["Config"]).read()
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        layers = [(diff_id, archive.getmember(path).size) for diff_id, path in zip(diff_ids, image["Layers"])]
        layer_files.update(zip(diff_ids, image["Layers"]))
        images += [(ref, config, layers) for ref in image.get("RepoTags") or [] if ref in refs]
    small = [((name, content), len(content)) for name, content in oci_layout(images).items()]
    have = state.layers
    missing = [(diff_id, archive.getmember(path)) for diff_id, path in layer_files.items() if diff_id not in have]
    return small + [((blob_path(diff_id), member), member.size) for diff_id, member in missing]


def _write_archive(archive: tarfile.TarFile, members: list[Member], descriptor: int) -> None:
    try:
        with os.fdopen(descriptor, "wb") as pipe, tarfile.open(fileobj=pipe, mode="w|") as out:
            for (name, content), size in members:
                if isinstance(content, bytes):
                    info = tarfile.TarInfo(name)
                    info.size = size
                    out.addfile(info, io.BytesIO(content))
                else:
                    info = copy.copy(content)
                    info.name = name
                    out.addfile(info, archive.extractfile(content) if content.isfile() else None)
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
        pulled = _reported_ids(output, wanted, f"{deployment.name}: the pull")
        step.changed, step.detail = True, ", ".join(wanted)
    return pulled
