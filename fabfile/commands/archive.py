"""What an image archive sent to the server holds: only the layers the server lacks.

Docker's classic image store loads a `docker save` archive with layer files
left out, because it looks each layer up by its chain before it reads the
file. Its containerd image store does not: it wants every file a `docker
save` manifest names. It does accept an OCI image layout whose blobs it
already holds in its content store, so for it the archive is rewritten as
one, and the image's ID on that server is the digest of the manifest built
here.
"""

from __future__ import annotations

import hashlib
import json

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def layers_to_leave_out(manifest: list[dict], diff_ids: dict[str, list[str]], chains: set[tuple[str, ...]]) -> set[str]:
    """Layer files of a `docker save` archive the server already has (same layer chain).

    docker load looks a layer up by its chain before it reads the file, so
    those files can stay behind: only new layers cross the network.
    """
    present, needed = set(), set()
    for image in manifest:
        ids = diff_ids[image["Config"]]
        for depth, path in enumerate(image["Layers"], start=1):
            (present if tuple(ids[:depth]) in chains else needed).add(path)
    return present - needed


def blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def oci_layout(images: list[tuple[str, bytes, list[tuple[str, int]]]]) -> dict[str, bytes]:
    """The small files of an OCI image layout for IMAGES (ref, config JSON, [(layer diff ID, size)]):
    oci-layout, index.json naming each ref, and each manifest and config blob. Layer blobs
    (uncompressed tars, named by their diff IDs) are added by the caller, only those the server lacks."""
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    entries = []
    for ref, config, layers in images:
        manifest = _compact({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id, "size": size}
                       for diff_id, size in layers],
        })
        files[blob_path(_digest(config))] = config
        files[blob_path(_digest(manifest))] = manifest
        entries.append({"mediaType": OCI_MANIFEST, "digest": _digest(manifest), "size": len(manifest),
                        "annotations": {"io.containerd.image.name": _full_name(ref),
                                        "org.opencontainers.image.ref.name": ref.rpartition(":")[2]}})
    files["index.json"] = _compact({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                    "manifests": entries})
    return files


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _compact(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _full_name(ref: str) -> str:
    """containerd names images in full: `api:v1` is docker.io/library/api:v1, `team/api:v1` docker.io/team/api:v1."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if "/" in ref else f"docker.io/library/{ref}"
