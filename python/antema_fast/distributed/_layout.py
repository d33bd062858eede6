"""Inputs and output layout of an archive run (no Dask needed here)."""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._batch import SUPPORTED_SUFFIXES

#: File name endings listed when a folder is walked or a glob expanded (explicitly named files
#: are always taken, whatever their ending): the same as ``antema analyze``'s.
MICROGRAPH_EXTENSIONS: tuple[str, ...] = tuple(SUPPORTED_SUFFIXES)

PARTICLES = "particles"
IMAGES = "images"
# Leftovers of a process killed while writing (names made by ``export.atomic_write`` and
# ``export.write_image_outputs``): hidden, so readers skip them; swept at the end of a run.
TMP_PREFIX = "."
TMP_FILE_SUFFIX = ".tmp.parquet"
TMP_DIR_MARK = ".partial-"
METADATA_KEY = b"antema_fast"
_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def _slug(text: str) -> str:
    """A file-name-safe rendering of ``text`` that never starts with ``.`` or ``_``.

    Parquet readers skip names that start with ``.`` or ``_``, so those are stripped.
    """
    s = _SAFE.sub("_", text.replace("/", "__")).lstrip("._")
    return s or "sample"


@dataclass(frozen=True)
class ArchiveItem:
    """One input file of an archive run.

    Parameters
    ----------
    path : str
        Absolute path of the micrograph file, as the workers will open it.
    sample : str
        Sample label: the file's folder, relative to the parent of the input folder it was found
        in (``"archive/specimen1"``), or the folder's name for a file named explicitly.
    key : str
        Output name: the file name made safe plus 10 hex digits of the SHA-1 of ``path``, so two
        files with the same name in different folders never collide and a re-run overwrites.
    """

    path: str
    sample: str
    key: str

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], sample: str) -> ArchiveItem:
        """Build the item of ``path`` in ``sample``, deriving the deterministic ``key``."""
        p = os.path.abspath(os.fspath(path))
        digest = hashlib.sha1(p.encode("utf-8", "surrogateescape")).hexdigest()[:10]
        return cls(path=p, sample=sample, key=f"{_slug(os.path.basename(p))}-{digest}")

    def particles_path(self, outdir: str | os.PathLike[str]) -> Path:
        """Where this image's Parquet file goes."""
        return Path(outdir) / PARTICLES / _slug(self.sample) / f"{self.key}.parquet"

    def images_dir(self, outdir: str | os.PathLike[str]) -> Path:
        """The folder handed to ``export.write_image_outputs`` for this image."""
        return Path(outdir) / IMAGES / _slug(self.sample) / self.key


def _walk(root: str, extensions: tuple[str, ...]) -> Iterator[str]:
    """Files under ``root``, lazily: a folder's own files (sorted), then its subfolders (sorted).

    Hidden entries are skipped; only one folder's listing is held at a time per level.
    """
    try:
        with os.scandir(root) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as exc:
        raise FileNotFoundError(f"cannot list input folder {root!r}: {exc}") from exc
    subfolders = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            subfolders.append(entry.path)
        elif entry.is_file() and entry.name.lower().endswith(extensions):
            yield entry.path
    for folder in subfolders:
        yield from _walk(folder, extensions)


def iter_archive(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    extensions: Sequence[str] = MICROGRAPH_EXTENSIONS,
) -> Iterator[ArchiveItem]:
    """List the micrographs of an archive lazily, one :class:`ArchiveItem` at a time.

    Parameters
    ----------
    inputs : path, glob pattern, or iterable of them
        Files (taken whatever their extension), folders (walked recursively with
        :func:`os.scandir`, hidden entries skipped, sorted per folder) and glob patterns
        (``**`` allowed). An iterable is consumed lazily too, so a generator over a million
        paths never sits in memory at once.
    extensions : sequence of str
        File name endings taken when walking folders or expanding globs (case-insensitive).

    Yields
    ------
    ArchiveItem
        Each file once per time it is listed (callers deduplicate by ``key``).

    Raises
    ------
    FileNotFoundError
        An input that is neither a file, a folder, nor a glob matching a micrograph; inputs
        given as a list or tuple are all checked before the first item is returned, those of
        another iterable when they are reached.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "archive"
    >>> (d / "s1").mkdir(parents=True); (d / "s1" / "a.tif").write_bytes(b"")
    0
    >>> [(i.sample, pathlib.Path(i.path).name) for i in iter_archive(d)]
    [('archive/s1', 'a.tif')]
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    exts = tuple(e.lower() for e in extensions)
    if isinstance(inputs, (list, tuple)):  # named up front: check them all before any work
        for raw in inputs:
            _check_input(os.fspath(raw), exts)
    return _iter_inputs(inputs, exts)


def _check_input(text: str, exts: tuple[str, ...]) -> None:
    if os.path.exists(text):
        return
    if glob.has_magic(text):
        if any(_takes(f, exts) for f in glob.iglob(text, recursive=True)):
            return
        raise FileNotFoundError(
            f"input pattern {text!r}: expected it to match at least one micrograph "
            f"(endings {', '.join(exts)}), got none"
        )
    raise FileNotFoundError(
        f"input {text!r}: expected an existing file, folder or glob pattern, got nothing there"
    )


def _takes(path: str, exts: tuple[str, ...]) -> bool:
    return path.lower().endswith(exts) and os.path.isfile(path)


def _iter_inputs(
    inputs: Iterable[str | os.PathLike[str]], exts: tuple[str, ...]
) -> Iterator[ArchiveItem]:
    for raw in inputs:
        text = os.fspath(raw)
        if os.path.isdir(text):
            root = os.path.abspath(text)
            base = os.path.dirname(root)
            for f in _walk(root, exts):
                rel = os.path.relpath(os.path.dirname(f), base)
                yield ArchiveItem.from_path(f, rel.replace(os.sep, "/"))
        elif os.path.isfile(text):
            yield ArchiveItem.from_path(text, _parent_name(text))
        else:
            _check_input(text, exts)  # raises for a missing file or an empty pattern
            for f in glob.iglob(text, recursive=True):
                if _takes(f, exts):
                    yield ArchiveItem.from_path(f, _parent_name(f))


def _parent_name(path: str) -> str:
    return os.path.basename(os.path.dirname(os.path.abspath(path))) or "sample"


def outputs_complete(item: ArchiveItem, outdir: str | os.PathLike[str], *, images: bool) -> bool:
    """Whether ``item`` was fully processed into ``outdir`` by an earlier run.

    The Parquet file is written last and atomically, so its presence means everything before it
    (the per-image folder) is complete too. With ``images=True`` the image folder must also hold
    pictures (a PNG file), so that a run without pictures is completed by a run that asks for
    them. Other options (table formats, settings) are not compared: after changing them, run
    without ``resume``.
    """
    if not item.particles_path(outdir).is_file():
        return False
    if not images:
        return True
    try:
        with os.scandir(item.images_dir(outdir)) as it:
            return any(e.name.endswith(".png") for e in it)
    except OSError:
        return False
