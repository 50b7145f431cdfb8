"""The pinned inputs (pins.json): package versions and the sha256 of every file read; fetching them."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from tools.build_bundle.common import BuildError, sha256_bytes

_PINS = json.loads((Path(__file__).with_name("pins.json")).read_text(encoding="utf-8"))
DEBIAN_PACKAGES: dict[str, str] = _PINS["debian_packages"]
PYPI_PACKAGES: dict[str, str] = _PINS["pypi_packages"]
# Every file read from the unpacked packages, relative to --work/root.
INPUT_SHA256: dict[str, str] = _PINS["inputs_sha256"]
# The code corpus: CPython 3.11.7 Lib/ files and their sha256 (regenerate with --pin-stdlib), and
# the LICENSE.txt beside the stdlib.
STDLIB_SHA256: dict[str, str] = _PINS["stdlib_sha256"]
STDLIB_LICENSE_SHA256: str = _PINS["stdlib_license_sha256"]

INPUT_KEYS = {
    "wikipedia": "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "cwe": "cwe2/database_v49/cwec_v4.14.xml",
}


def fetch_packages(work: Path) -> Path:
    """Download and unpack the pinned Debian and PyPI packages under `work`; return the unpacked root."""
    root = work / "root"
    debs, wheels = work / "debs", work / "wheels"
    for folder in (root, debs, wheels):
        folder.mkdir(parents=True, exist_ok=True)
    for name, version in DEBIAN_PACKAGES.items():
        if not list(debs.glob(f"{name}_*.deb")):
            subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=debs, check=True)
        (deb,) = debs.glob(f"{name}_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    for name, version in PYPI_PACKAGES.items():
        stem = name.replace("-", "_")
        if not list(wheels.glob(f"{stem}-{version}-*.whl")):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--python-version",
                    "3.11",
                    "--platform",
                    "manylinux_2_28_x86_64",
                    f"{name}=={version}",
                    "-d",
                    str(wheels),
                ],
                check=True,
            )
        (wheel,) = wheels.glob(f"{stem}-{version}-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.namelist() if m.startswith(f"{stem}/") and not m.endswith(".so")]
            archive.extractall(root, members=members)
    return root


def verify_inputs(root: Path) -> None:
    for rel, expected in INPUT_SHA256.items():
        path = root / rel
        if not path.is_file():
            raise BuildError(f"missing input {path}: did a package version change?")
        actual = sha256_bytes(path.read_bytes())
        if actual != expected:
            raise BuildError(f"{rel}: sha256 {actual} differs from the pinned {expected}")
