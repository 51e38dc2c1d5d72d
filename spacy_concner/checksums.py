"""Checksum manifests of saved folders (the e5 encoder, the concner component, packaged
pipelines): `checksums.sha256` lists `<sha256>  <relative path>` per file, the format of
`sha256sum`, so that `sha256sum -c checksums.sha256` checks a folder by hand too. A
damaged or truncated file is then named before anything tries to unpack it."""
import hashlib
from pathlib import Path
from typing import Dict, Iterator, Optional

from .files import write_atomic

CHECKSUMS = "checksums.sha256"
DAMAGED_HINT = "copy the pipeline again or train it again"


class DamagedFileError(OSError):
    """A file that differs from its checksum, or is missing: the message names it."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file_:
        for chunk in iter(lambda: file_.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(folder: Path) -> None:
    """List every file below `folder` (but the manifest itself) in its manifest."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p != folder / CHECKSUMS)
    lines = [f"{sha256(path)}  {path.relative_to(folder).as_posix()}\n" for path in files]
    write_atomic(folder / CHECKSUMS, "".join(lines))


def read_checksums(folder: Path) -> Dict[str, str]:
    """{relative path: sha256} from the folder's manifest (empty when it has none)."""
    listing = Path(folder) / CHECKSUMS
    if not listing.is_file():
        return {}
    expected = {}
    for line in listing.read_text(encoding="utf8").splitlines():
        digest, _, name = line.partition("  ")
        expected[name] = digest
    return expected


def first_damaged(folder: Path) -> Optional[Path]:
    """The first file that the folder's manifest lists and that is missing or changed."""
    for name, digest in read_checksums(folder).items():
        path = Path(folder) / name
        if not path.is_file() or sha256(path) != digest:
            return path
    return None


def check_intact(folder: Path, what: str, hint: str = DAMAGED_HINT) -> None:
    """DamagedFileError naming the first damaged file of every manifest in or below
    `folder` (a pipeline has one per component that writes one, a package one more)."""
    for manifest in _manifests(Path(folder)):
        damaged = first_damaged(manifest.parent)
        if damaged is not None:
            state = "is missing" if not damaged.exists() else "is damaged (its checksum differs)"
            raise DamagedFileError(f"{damaged} {state}: {what} cannot be used; {hint}")


def _manifests(folder: Path) -> Iterator[Path]:
    return (path for path in sorted(folder.rglob(CHECKSUMS)) if path.is_file())
