"""Real language-package test data for the language indexers' tests, built with the real tools
(pip, npm, go, cargo, binutils) and cached under ``.cache/scanning/lang/`` in the checkout root.

Each builder returns a directory; a build happens once (into a temporary directory renamed into
place, so parallel workers never see half a build). ``index_tree`` drives one indexer over a
directory the way the layer reader does (``wants``, ``limit``, ``add``, ``finish``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dtr.scanning.indexers.base import Indexer
from dtr.scanning.types import LayerIndex

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "scanning" / "lang"


def require(tool: str, install: str) -> str:
    """The tool's path; the test fails saying how to install it when it is missing."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is missing: install it with `{install}` (scripts/install-test-deps.sh does)")
    return path


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    return proc.stdout


def cached(name: str, build: Callable[[Path], None]) -> Path:
    """``CACHE/name``, built by ``build(directory)`` if it is not there yet."""
    final = CACHE / name
    if final.exists():
        return final
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=CACHE))
    try:
        build(tmp)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists():
            raise
    return final


def index_tree(indexer: Indexer, root: Path, prefix: str = "") -> LayerIndex:
    """Every regular file under ``root`` offered to ``indexer`` as the layer reader would, with
    layer paths ``prefix + relative path``; the indexer's findings."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            file = Path(dirpath) / name
            st = file.lstat()
            if not stat.S_ISREG(st.st_mode):
                continue
            path = prefix + file.relative_to(root).as_posix()
            if indexer.wants(path, st.st_size, stat.S_IMODE(st.st_mode)) \
                    and st.st_size <= indexer.limit(path):
                indexer.add(path, file.read_bytes())
    index = LayerIndex()
    indexer.finish(index)
    return index


# --- Python and npm ------------------------------------------------------------------------------

PIP_REQUIREMENTS = ("requests==2.19.1", "urllib3==1.24.1", "jinja2==2.10")
NPM_PACKAGES = ("lodash@4.17.15", "minimist@1.2.0")


def pip_target() -> Path:
    """``pip install --no-deps --target`` of real PyPI releases (wheels: ``.dist-info``)."""
    def build(d: Path) -> None:
        run(sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
            "--no-deps", "--no-compile", "--target", d / "site-packages", *PIP_REQUIREMENTS)
    return cached("pip-target", build) / "site-packages"


def pip_list(path: Path) -> set[tuple[str, str]]:
    out = run(sys.executable, "-m", "pip", "list", "--disable-pip-version-check", "--path", path,
              "--format", "json")
    return {(d["name"], d["version"]) for d in json.loads(out)}


def npm_prefix() -> Path:
    """``npm install --prefix`` of real npm releases."""
    npm = require("npm", "apt-get install npm")

    def build(d: Path) -> None:
        run(npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", d, *NPM_PACKAGES)
    return cached("npm-prefix", build)


def npm_ls(prefix: Path) -> set[tuple[str, str]]:
    npm = require("npm", "apt-get install npm")
    tree = json.loads(run(npm, "ls", "--all", "--json", "--prefix", prefix))
    found: set[tuple[str, str]] = set()

    def walk(deps: dict[str, dict[str, object]]) -> None:
        for name, dep in deps.items():
            found.add((name, str(dep["version"])))
            walk(dep.get("dependencies", {}))  # type: ignore[arg-type]
    walk(tree.get("dependencies", {}))
    return found


# --- Java ----------------------------------------------------------------------------------------

def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def pom_properties(group: str, artifact: str, version: str) -> dict[str, bytes]:
    return {f"META-INF/maven/{group}/{artifact}/pom.properties":
            f"#Generated by Maven\nartifactId={artifact}\ngroupId={group}\nversion={version}\n".encode()}


def zip_bomb_war() -> Path:
    """A war whose ``WEB-INF/lib/bomb.jar`` inflates to 300 MiB of zeros (300 KiB on disk)."""
    def build(d: Path) -> None:
        with zipfile.ZipFile(d / "bomb.war", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n\n")
            with zf.open("WEB-INF/lib/bomb.jar", "w", force_zip64=True) as member:
                chunk = bytes(1 << 20)
                for _ in range(300):
                    member.write(chunk)
    return cached("zip-bomb", build) / "bomb.war"


# --- Go ------------------------------------------------------------------------------------------

def _h1(files: dict[str, bytes]) -> str:
    """Go's dirhash ``Hash1`` of files (names as in the module zip)."""
    lines = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in sorted(files))
    return "h1:" + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode()


def _proxy_module(proxy: Path, path: str, version: str, files: dict[str, bytes]) -> str:
    """Adds a module version to a ``GOPROXY=file://`` directory; its go.sum lines."""
    d = proxy / path / "@v"
    d.mkdir(parents=True, exist_ok=True)
    with (d / "list").open("a") as f:
        f.write(version + "\n")
    (d / f"{version}.info").write_text(json.dumps({"Version": version, "Time": "2023-01-01T00:00:00Z"}))
    (d / f"{version}.mod").write_bytes(files["go.mod"])
    prefixed = {f"{path}@{version}/{name}": data for name, data in files.items()}
    (d / f"{version}.zip").write_bytes(zip_bytes(prefixed))
    return (f"{path} {version} {_h1(prefixed)}\n"
            f"{path} {version}/go.mod {_h1({'go.mod': files['go.mod']})}\n")


GREET_GO = b'package greet\n\nfunc Hello() string { return "hello" }\n'
APP_GO = (b'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/greet"\n)\n\n'
          b"func main() { fmt.Println(greet.Hello()) }\n")


def go_binaries() -> Path:
    """Go binaries built by Debian's go from modules served by a local file proxy:
    ``bin/app`` (``go install example.com/app@v1.0.0``: a versioned main module and a dependency)
    and ``bin/localapp`` (a local main module, ``(devel)``, with a dependency replaced by another
    module version and one replaced by a local directory)."""
    go = require("go", "apt-get install golang-go")

    def build(d: Path) -> None:
        proxy = d / "proxy"
        sums = _proxy_module(proxy, "example.com/greet", "v1.2.0",
                             {"go.mod": b"module example.com/greet\n\ngo 1.19\n", "greet.go": GREET_GO})
        fork_sums = _proxy_module(proxy, "example.com/greetfork", "v1.3.0",
                                  {"go.mod": b"module example.com/greet\n\ngo 1.19\n", "greet.go": GREET_GO})
        app_mod = b"module example.com/app\n\ngo 1.19\n\nrequire example.com/greet v1.2.0\n"
        _proxy_module(proxy, "example.com/app", "v1.0.0",
                      {"go.mod": app_mod, "go.sum": sums.encode(), "main.go": APP_GO})
        env = {"PATH": os.environ["PATH"], "HOME": str(d), "GOPATH": str(d / "gopath"),
               "GOCACHE": str(d / "gocache"), "GOBIN": str(d / "bin"), "GOENV": "off",
               "GOPROXY": (proxy.as_uri()), "GOSUMDB": "off", "GOFLAGS": "-modcacherw",
               "CGO_ENABLED": "0"}
        run(go, "install", "example.com/app@v1.0.0", cwd=d, env=env)

        src = d / "localapp"
        (src / "util").mkdir(parents=True)
        (src / "util" / "go.mod").write_bytes(b"module example.com/util\n\ngo 1.19\n")
        (src / "util" / "util.go").write_bytes(b'package util\n\nfunc Name() string { return "util" }\n')
        (src / "go.mod").write_bytes(
            b"module example.com/localapp\n\ngo 1.19\n\n"
            b"require (\n\texample.com/greet v1.2.0\n\texample.com/util v0.0.0\n)\n\n"
            b"replace example.com/greet => example.com/greetfork v1.3.0\n\n"
            b"replace example.com/util => ./util\n")
        (src / "go.sum").write_text(sums + fork_sums)
        (src / "main.go").write_bytes(
            b'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/greet"\n\t"example.com/util"\n)\n\n'
            b"func main() { fmt.Println(greet.Hello(), util.Name()) }\n")
        run(go, "build", "-buildvcs=false", "-o", d / "bin" / "localapp", ".", cwd=src, env=env)
        shutil.rmtree(d / "gocache")
        run("chmod", "-R", "u+w", d / "gopath")
        shutil.rmtree(d / "gopath")
    return cached("go", build) / "bin"


def go_version_m(binary: Path) -> tuple[str, list[tuple[str, str]]]:
    """(Go version, [(module, version)]) as ``go version -m`` reports them: the main module unless
    ``(devel)``, dependencies with ``=>`` replacements applied, local-directory ones left out."""
    go = require("go", "apt-get install golang-go")
    lines = run(go, "version", "-m", binary).splitlines()
    go_version = lines[0].split(": ", 1)[1].strip()
    modules: list[list[str]] = []
    for line in lines[1:]:
        fields = line.strip().split("\t")
        if fields[0] in ("mod", "dep"):
            modules.append([fields[0], fields[1], fields[2] if len(fields) > 2 else ""])
        elif fields[0] == "=>":
            modules[-1][1:] = [fields[1], fields[2] if len(fields) > 2 else ""]
    return go_version, [(path, version) for kind, path, version in modules
                        if version and version != "(devel)"]


# --- Rust ----------------------------------------------------------------------------------------

#: cargo-auditable's JSON (auditable-serde's ``VersionInfo``) for a binary with one runtime
#: dependency (with its own dependency), a git one, and a build-time one.
AUDIT_JSON: dict[str, list[dict[str, Any]]] = {
    "packages": [
        {"name": "hello", "version": "0.1.0", "source": "local", "dependencies": [1, 3, 4],
         "root": True},
        {"name": "rand", "version": "0.8.5", "source": "crates.io", "dependencies": [2]},
        {"name": "libc", "version": "0.2.150", "source": "crates.io"},
        {"name": "cc", "version": "1.0.83", "source": "crates.io", "kind": "build"},
        {"name": "gitdep", "version": "0.3.0", "source": "git"},
    ],
}


def rust_binaries() -> Path:
    """A tiny binary built with cargo (``plain``) and the same with a ``.dep-v0`` section of
    zlib-compressed ``AUDIT_JSON`` added by objcopy (``auditable``), as cargo-auditable would."""
    cargo = require("cargo", "rustup (https://rustup.rs) or apt-get install cargo")
    objcopy = require("objcopy", "apt-get install binutils")

    def build(d: Path) -> None:
        run(cargo, "new", "--quiet", "--bin", "--vcs", "none", "hello", cwd=d)
        run(cargo, "build", "--quiet", "--release", "--offline", cwd=d / "hello",
            env={**os.environ, "CARGO_TARGET_DIR": str(d / "target")})
        (d / "bin").mkdir()
        shutil.copy(d / "target" / "release" / "hello", d / "bin" / "plain")
        (d / "dep-v0").write_bytes(zlib.compress(json.dumps(AUDIT_JSON).encode(), 9))
        run(objcopy, "--add-section", f".dep-v0={d / 'dep-v0'}",
            "--set-section-flags", ".dep-v0=noload,readonly", d / "bin" / "plain", d / "bin" / "auditable")
        shutil.rmtree(d / "target")
    return cached("rust", build) / "bin"


def elf_object(target: str, section_data: bytes, directory: Path) -> bytes:
    """An ELF relocatable of the BFD ``target`` (``elf32-big``...) made by objcopy, holding
    ``section_data`` in a ``.dep-v0`` section."""
    objcopy = require("objcopy", "apt-get install binutils")
    raw = directory / "raw.bin"
    raw.write_bytes(section_data)
    out = directory / f"{target}.o"
    run(objcopy, "-I", "binary", "-O", target, "--rename-section", ".data=.dep-v0", raw, out)
    return out.read_bytes()
