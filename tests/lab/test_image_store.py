"""Shipping to a Docker whose images live in the containerd image store (the default of new Docker 29
installs). Runs last: it leaves the session's target on that store."""

import json
import re

from lab_names import LAB
from test_deploy import live_release, serving_version


def server_image_id(as_deploy, ref):
    return as_deploy.run(f"docker image inspect -f '{{{{.Id}}}}' {ref}").stdout.strip()


def test_images_ship_to_the_containerd_image_store_sending_only_missing_layers(variant, as_deploy, site):
    fab = variant(lambda data: data["server"].setdefault("docker", {}).update(containerd_image_store=True))
    refused = fab("provision")
    assert refused.returncode == 1 and "--switch-image-store" in refused.stderr
    assert "io.containerd.snapshotter.v1" not in as_deploy.run("docker info -f '{{json .DriverStatus}}'").stdout
    provisioned = fab("provision", "--switch-image-store")
    assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
    assert "io.containerd.snapshotter.v1" in as_deploy.run("docker info -f '{{json .DriverStatus}}'").stdout

    # The switch stopped every container: the site is down until the next deploy brings it back.
    assert as_deploy.run("docker ps -q").stdout.strip() == ""
    first = fab("deploy", "--version", "v1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "an OCI layout for the containerd image store" in first.stdout
    assert serving_version(site) == "v1"
    v1 = live_release(as_deploy)
    record = json.loads(as_deploy.run(f"cat {LAB.release_dir(v1)}/release.json").stdout)
    assert record["images"]["api"]["id"] == server_image_id(as_deploy, "slipway-demo/api:v1")

    second = fab("deploy", "--version", "v2")
    assert second.returncode == 0, second.stdout + second.stderr
    shipped = re.search(r"ship images \(1 of 3 missing\).*sent ([\d.]+) MB of ([\d.]+) MB", second.stdout)
    assert shipped, second.stdout
    assert float(shipped.group(1)) < 5 < float(shipped.group(2))
    assert serving_version(site) == "v2"

    again = fab("deploy", "--version", "v2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "ship images (0 of 3 missing)" in again.stdout

    rolled = fab("rollback", "--to", v1)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert serving_version(site) == "v1"
