"""Which files of a static folder never change: those a bundler's manifest
maps a source name to (Vite's .vite/manifest.json, webpack's manifest.json
and asset-manifest.json, Django's staticfiles.json) under another name, a
hash in it. nginx keeps them for good. Read from the folder alone, by the
master once the app is loaded (userapp/static_folders.py) and at the start
for a folder STATIC_PATH names (static.py)."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

# Where bundlers write their manifests, relative to the folder they fill.
MANIFESTS = (".vite/manifest.json", "manifest.json", "asset-manifest.json", "staticfiles.json",
             "assets/manifest.json")


def fingerprinted(root: Path) -> set[str]:
    """Files below root (relative names) that a bundler's manifest names
    under another name than their source's: content-hashed, never changed
    in place. Only files that are there, and never a dotfile."""
    found: set[str] = set()
    for name in MANIFESTS:
        manifest = root / name
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError):  # none, or not JSON (UnicodeDecodeError among them)
            continue
        base = manifest.parent.relative_to(root)
        for source, output in _pairs(data):
            target = _inside(root, base, output)
            if target and _hashed(PurePosixPath(source).stem, PurePosixPath(target).stem):
                found.add(target)
    return found


def _hashed(source: str, output: str) -> bool:
    """Whether an output name is its source's plus a hash: main.ts ->
    main-BXk3dOP1.js (Vite), app.css -> app.55e7cbb9ba48.css (Django),
    spa.js -> spa.4cd1e2bb.entry.js (webpack). A name that stayed as it was,
    or one unlike its source's, is not taken for fingerprinted."""
    return len(output) > len(source) + 1 and output.startswith(source) and output[len(source)] in "-._"


def _pairs(data) -> list[tuple[str, str]]:
    """(source name, output file) of each format's manifest."""
    if not isinstance(data, dict):
        return []
    pairs: list[tuple[str, str]] = []
    # Django's ManifestStaticFilesStorage: {"paths": {source: hashed}, "version": ...}
    # webpack's asset manifests: {source: output}, or {"files": {...}} (create-react-app, Superset).
    flat = data.get("paths") if isinstance(data.get("paths"), dict) else data.get("files", data)
    if isinstance(flat, dict):
        pairs += [(source, output) for source, output in flat.items() if isinstance(output, str)]
    # Vite: {source: {"file": output, "src": source, "css": [...], "assets": [...]}}
    # Anything else in a manifest is not ours to judge: skipped, never a failed start.
    for source, chunk in data.items():
        if isinstance(chunk, dict) and isinstance(chunk.get("file"), str):
            src = chunk.get("src")
            pairs.append((src if isinstance(src, str) and src else source, chunk["file"]))
            for key in ("css", "assets"):
                extras = chunk.get(key)
                if isinstance(extras, list):
                    pairs += [(source, extra) for extra in extras if isinstance(extra, str)]
    return pairs


def _inside(root: Path, base: Path, output: str) -> str | None:
    """A manifest's output as a name relative to root, if it is a file
    there: relative to the manifest, or to root, or a URL that ends in one."""
    output = output.split("?")[0].split("#")[0].lstrip("/")
    if not output or "/." in f"/{output}":
        return None
    parts = PurePosixPath(output).parts
    for start in range(len(parts)):
        tail = PurePosixPath(*parts[start:])
        for candidate in ((base / tail).as_posix(), tail.as_posix()):
            if (root / candidate).is_file() and ".." not in PurePosixPath(candidate).parts:
                return candidate
    return None
