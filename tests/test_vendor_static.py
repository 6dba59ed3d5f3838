"""Vendored front-end files are the recorded, unmodified npm package files."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "static" / "vendor"


def recorded() -> dict[str, tuple[str, str, str]]:
    """VERSIONS: file → (package@version, path in package, sha256)."""
    entries = {}
    for line in (VENDOR / "VERSIONS").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, package, path, digest = line.split()
        entries[name] = (package, path, digest)
    return entries


def test_every_vendored_file_is_recorded_with_its_sha256() -> None:
    entries = recorded()
    files = {path.name for path in VENDOR.iterdir() if path.name != "VERSIONS"}

    assert files == set(entries)
    for name, (_package, _path, digest) in entries.items():
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_versions_are_the_ones_the_pages_load() -> None:
    entries = recorded()
    assert entries["htmx-2.0.11.min.js"][0] == "htmx.org@2.0.11"
    assert entries["htmx-ext-sse-2.2.4.js"][0] == "htmx-ext-sse@2.2.4"
    # The file names carry the version, and the files say it too.
    assert 'version:"2.0.11"' in (VENDOR / "htmx-2.0.11.min.js").read_text().replace(" ", "")
    layout = (ROOT / "templates" / "base.html").read_text()
    loaded = re.findall(r"filename='vendor/([^']+)'", layout)
    assert loaded == ["htmx-2.0.11.min.js", "htmx-ext-sse-2.2.4.js"]
