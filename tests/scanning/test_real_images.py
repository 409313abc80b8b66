"""Every layer of real images (tests/scanning/images.py) indexed by the layer reader, the image's
software composed from those indexes, and the result compared with what the package managers
themselves say of the final root filesystem (dpkg-query, apk's database, pip list, npm ls)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from dtr.scanning.image import ImagePackage, LayerRows, compose
from dtr.scanning.indexers import all_indexers
from dtr.scanning.layer import index_stream
from dtr.scanning.types import Distribution
from tests.scanning import images
from tests.scanning.images import BuiltImage


def _blob(layout: Path, digest: str) -> Path:
    algo, hexdigest = digest.split(":", 1)
    return layout / "blobs" / algo / hexdigest


def _composed(image: BuiltImage) -> tuple[Distribution | None, list[ImagePackage]]:
    ids = itertools.count(1)
    rows = []
    for digest in image.layers:
        with _blob(image.layout, digest).open("rb") as f:
            index = index_stream(f.read, all_indexers())
        rows.append(LayerRows(digest, index.distribution, [(next(ids), p) for p in index.packages],
                              index.whiteouts, index.opaque_dirs, index.package_dbs))
    return compose(rows)


def _of(packages: list[ImagePackage], ecosystem: str) -> list[ImagePackage]:
    return [p for p in packages if p.package.ecosystem == ecosystem]


@pytest.fixture(scope="module")
def app_image() -> BuiltImage:
    return images.debian_app_image()


def test_debian_minbase_equals_dpkg_query() -> None:
    image = images.debian_image()
    distribution, packages = _composed(image)
    assert distribution is not None and (distribution.id, distribution.version_id) == ("debian", "12")
    found = sorted((p.package.name, p.package.version, p.package.source_name, p.package.source_version)
                   for p in _of(packages, "deb"))
    assert found == image.truth["deb"]
    assert {p.layer_index for p in packages} == {0}


def test_app_image_layers_equal_the_package_managers(app_image: BuiltImage) -> None:
    """Removal of an OS package, apt and pip and npm installs, whiteouts and an opaque directory:
    the composed software equals the final root filesystem's, package for package."""
    _, packages = _composed(app_image)
    truth = app_image.truth
    deb = sorted((p.package.name, p.package.version, p.package.source_name, p.package.source_version)
                 for p in _of(packages, "deb"))
    assert deb == truth["deb"]
    assert images.PURGED not in {p.package.name for p in _of(packages, "deb")}
    # pip packages installed by pip, not those a Debian package owns (reported as the deb).
    owned = {(n, v) for n, v, _ in truth.get("pypi_owned", [])}
    assert owned, "the image should hold a Python package owned by a Debian package"
    expected_pypi = sorted((n, v) for n, v, _ in truth["pypi"] if (n, v) not in owned)
    assert sorted((p.package.name, p.package.version) for p in _of(packages, "pypi")) == expected_pypi
    npm = sorted((p.package.name, p.package.version) for p in _of(packages, "npm"))
    assert npm == sorted((n, v) for n, v, _ in truth["npm"])


def test_app_image_attributes_each_package_to_the_layer_that_brought_it(app_image: BuiltImage) -> None:
    _, packages = _composed(app_image)
    by_name = {(p.package.ecosystem, p.package.name): p.layer_index for p in packages}
    for ecosystem, kind in (("deb", "deb"), ("npm", "npm")):
        for name, version, *_ in app_image.truth[kind]:
            first = next(i for i, t in enumerate(app_image.layer_truth)
                         if any(row[0] == name and row[1] == version for row in t.get(kind, [])))
            assert by_name[(ecosystem, name)] == first, (ecosystem, name)


def test_distroless_status_d_equals_dpkg() -> None:
    image = images.distroless_image()
    _, packages = _composed(image)
    found = sorted((p.package.name, p.package.version, p.package.source_name, p.package.source_version)
                   for p in _of(packages, "deb"))
    assert found == image.truth["deb"]


def test_alpine_equals_its_apk_database() -> None:
    image = images.alpine_image()
    distribution, packages = _composed(image)
    assert distribution is not None and distribution.id == "alpine"
    found = sorted((p.package.name, p.package.version, p.package.source_name) for p in _of(packages, "apk"))
    assert found == image.truth["apk"]

