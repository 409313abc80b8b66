"""The scanner's real test images (``tests.scanning.images``): each builds into a valid OCI layout,
goes through a real dtr and back with skopeo unchanged, and carries the package managers' own
non-trivial ground truth."""

from __future__ import annotations

import concurrent.futures
import json
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from tests.clients.engines import APT, Skopeo, run, verify_dir_image
from tests.oci import digest_of
from tests.scanning import images
from tests.scanning.images import PIP_SITE, BuiltImage, BuiltIndex, build_once
from tests.servers import DtrProcess, require_binary

DIST = "usr/lib/python3/dist-packages"


@pytest.fixture(scope="session")
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    return Skopeo(tmp_path_factory.mktemp("skopeo"), require_binary("skopeo", f"{APT} skopeo"))


@pytest.fixture(scope="session")
def debian() -> BuiltImage:
    return images.debian_image()


@pytest.fixture(scope="session")
def app() -> BuiltImage:
    return images.debian_app_image()


@pytest.fixture(scope="session")
def distroless() -> BuiltImage:
    return images.distroless_image()


@pytest.fixture(scope="session")
def alpine() -> BuiltImage:
    return images.alpine_image()


@pytest.fixture(scope="session")
def multiarch() -> BuiltIndex:
    return images.multiarch_index()


def _manifest_digest(layout: Path, tag: str) -> str:
    for desc in json.loads((layout / "index.json").read_text())["manifests"]:
        if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return str(desc["digest"])
    raise KeyError(tag)


def _layer_names(image: BuiltImage, i: int) -> list[str]:
    """The entry names of layer ``i``, read as a stream."""
    with tarfile.open(image.layout / "blobs/sha256" / image.layers[i].split(":")[1], "r|gz") as tar:
        return [m.name for m in tar]


def _roundtrip(skopeo: Skopeo, dtr: DtrProcess, image: BuiltImage, tmp_path: Path) -> None:
    """The layout is valid; pushed to dtr and pulled back, manifest and every blob are unchanged."""
    run(["umoci", "stat", "--image", image.image])
    inspected = json.loads(skopeo.skopeo("inspect", image.ref).stdout)
    assert inspected["Layers"] == list(image.layers)
    dest = f"{dtr.host}/scanfixtures/{uuid.uuid4().hex[:12]}:{image.tag}"
    digest = images.push(skopeo, image, dest)
    assert digest == _manifest_digest(image.layout, image.tag)
    out = tmp_path / "pulled"
    assert skopeo.copy(f"docker://{dest}", f"dir:{out}") == digest
    manifest = verify_dir_image(out, digest)
    assert [d["digest"] for d in manifest["layers"]] == list(image.layers)


def test_debian_image(debian: BuiltImage, skopeo: Skopeo, dtr: DtrProcess, tmp_path: Path) -> None:
    assert len(debian.layers) == 1 and debian.layer_truth == (debian.truth,)
    debs = {p[0]: p for p in debian.truth["deb"]}
    assert len(debs) >= 80, sorted(debs)
    assert {"base-files", "dpkg", "apt", "tzdata", "perl-base"} <= set(debs)
    assert debs["libc6"][2] == "glibc" and debs["libc6"][3] == debs["libc6"][1]
    # Binary NMUs: the binary's version is not its source's.
    assert any(p[1] != p[3] for p in debs.values())
    assert set(debian.truth) == {"deb"}
    names = _layer_names(debian, 0)
    assert "var/lib/dpkg/status" in names and "etc/os-release" in names
    _roundtrip(skopeo, dtr, debian, tmp_path)


def test_debian_app_image(app: BuiltImage, debian: BuiltImage, skopeo: Skopeo, dtr: DtrProcess,
                          tmp_path: Path) -> None:
    assert len(app.layers) == 6 and len(app.layer_truth) == 6
    assert app.layers[0] == debian.layers[0] and app.layer_truth[0] == debian.truth
    debs = [{p[0]: p for p in t["deb"]} for t in app.layer_truth]
    # Layer 2: apt-get purge took tzdata (and its whole source) out of the dpkg status.
    assert "tzdata" in debs[0] and "tzdata" not in debs[1]
    assert set(debs[0]) - set(debs[1]) == {"tzdata"}
    assert "var/lib/dpkg/status" in _layer_names(app, 1)
    # Layer 3: python3-six and python3 with it, six's egg-info owned by the deb.
    assert {"python3-six", "python3", "python3.11"} <= set(debs[2]) - set(debs[1])
    assert app.layer_truth[2]["pypi_owned"] == [("six", "1.16.0", "python3-six")]
    # Layer 4: pip and npm.
    assert app.layer_truth[3]["pypi"] == [
        ("Jinja2", "2.10", PIP_SITE), ("requests", "2.19.1", PIP_SITE), ("six", "1.16.0", DIST),
        ("urllib3", "1.24.1", PIP_SITE)]
    assert app.layer_truth[3]["npm"] == [
        ("lodash", "4.17.15", "app/node_modules/lodash"), ("minimist", "1.2.0", "app/node_modules/minimist"),
        ("ms", "2.0.0", "opt/tool/node_modules/ms")]
    # Layer 5: whiteouts (a pip package uninstalled, a file of an OS package deleted).
    names = _layer_names(app, 4)
    assert f"{PIP_SITE}/.wh.jinja2" in names and "etc/.wh.motd" in names
    # Layer 6: /opt/tool opaque, re-created with a newer ms.
    assert "opt/tool/.wh..wh..opq" in _layer_names(app, 5)
    assert app.truth == app.layer_truth[5]
    assert app.truth["pypi"] == [("requests", "2.19.1", PIP_SITE), ("six", "1.16.0", DIST),
                                 ("urllib3", "1.24.1", PIP_SITE)]
    assert app.truth["npm"] == [
        ("lodash", "4.17.15", "app/node_modules/lodash"), ("minimist", "1.2.0", "app/node_modules/minimist"),
        ("ms", "2.1.3", "opt/tool/node_modules/ms")]
    assert app.truth["deb"] == app.layer_truth[2]["deb"]
    _roundtrip(skopeo, dtr, app, tmp_path)


def test_distroless_image(distroless: BuiltImage, debian: BuiltImage, skopeo: Skopeo, dtr: DtrProcess,
                          tmp_path: Path) -> None:
    assert len(distroless.layers) == 1
    from_debian = [p for p in debian.truth["deb"] if p[0] in images.DISTROLESS_PACKAGES]
    assert distroless.truth == {"deb": from_debian} and len(from_debian) == len(images.DISTROLESS_PACKAGES)
    names = set(_layer_names(distroless, 0))
    assert "var/lib/dpkg/status" not in names
    for pkg in images.DISTROLESS_PACKAGES:
        assert {f"var/lib/dpkg/status.d/{pkg}", f"var/lib/dpkg/status.d/{pkg}.md5sums"} <= names
    assert {"usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/os-release", "etc/os-release"} <= names
    _roundtrip(skopeo, dtr, distroless, tmp_path)


def test_alpine_image(alpine: BuiltImage, skopeo: Skopeo, dtr: DtrProcess, tmp_path: Path) -> None:
    assert len(alpine.layers) == 1 and set(alpine.truth) == {"apk"}
    apks = {p[0]: p for p in alpine.truth["apk"]}
    assert len(apks) >= 50, sorted(apks)
    assert {"musl", "busybox", "apk-tools", "alpine-baselayout"} <= set(apks)
    # Origins differ from names for split packages.
    assert apks["alpine-baselayout-data"][2] == "alpine-baselayout"
    assert all(p[1] and p[2] for p in apks.values())
    names = _layer_names(alpine, 0)
    assert "lib/apk/db/installed" in names and "etc/os-release" in names
    _roundtrip(skopeo, dtr, alpine, tmp_path)


def test_multiarch_index(multiarch: BuiltIndex, debian: BuiltImage, alpine: BuiltImage, skopeo: Skopeo,
                         dtr: DtrProcess, tmp_path: Path) -> None:
    raw = skopeo.skopeo("inspect", "--raw", multiarch.ref).stdout.encode()
    assert digest_of(raw) == multiarch.digest
    platforms = {f"{m['platform']['os']}/{m['platform']['architecture']}" for m in json.loads(raw)["manifests"]}
    assert platforms == set(multiarch.platforms) == {"linux/amd64", "linux/arm64"}
    amd64, arm64 = multiarch.platforms["linux/amd64"], multiarch.platforms["linux/arm64"]
    assert (amd64.layers, amd64.truth) == (debian.layers, debian.truth)
    assert (arm64.layers, arm64.truth) == (alpine.layers, alpine.truth)
    for image, arch in ((amd64, "amd64"), (arm64, "arm64")):
        config = json.loads(skopeo.skopeo("inspect", "--config", image.ref).stdout)
        assert config["architecture"] == arch

    dest = f"{dtr.host}/scanfixtures/{uuid.uuid4().hex[:12]}:multi"
    assert images.push(skopeo, multiarch, dest) == multiarch.digest
    assert skopeo.skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{dest}").stdout.encode() == raw
    out = tmp_path / "arm64"
    digest = skopeo.copy(f"docker://{dest}", f"dir:{out}", "--override-arch", "arm64")
    assert digest == _manifest_digest(multiarch.layout, "arm64")
    assert [d["digest"] for d in verify_dir_image(out, digest)["layers"]] == list(alpine.layers)


def _slow_build(cache: Path) -> str:
    def build(out: Path) -> None:
        with open(cache / "builds", "a") as f:
            f.write("x\n")
        time.sleep(0.3)  # widen the race window, not a timing assertion
        (out / "image.json").write_text("{}")

    return str(build_once(cache, "thing", build))


def test_build_once_builds_once_and_leaves_no_half_build(tmp_path: Path) -> None:
    (tmp_path / "v0" / "old").mkdir(parents=True)

    def fail(out: Path) -> None:
        (out / "partial").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        build_once(tmp_path, "thing", fail)
    assert sorted(p.name for p in (tmp_path / f"v{images.RECIPE}").iterdir()) == ["thing.lock"]

    with concurrent.futures.ProcessPoolExecutor(4) as pool:
        outs = list(pool.map(_slow_build, [tmp_path] * 4))
    assert len(set(outs)) == 1 and (Path(outs[0]) / "image.json").exists()
    assert (tmp_path / "builds").read_text() == "x\n"
    assert not (tmp_path / "v0").exists()  # an older recipe's images are removed
