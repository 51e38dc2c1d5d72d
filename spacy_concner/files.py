"""Files and folders written atomically (whole or not at all), DocBin files read with one
clear error, and long jobs written chunk by chunk so that an interrupted run resumes."""
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Union

from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab
from wasabi import msg

FINGERPRINT = "fingerprint.json"


class DocBinError(ValueError):
    """A file that is missing or cannot be read as a DocBin: the message says what to do."""


class OutputPathError(OSError):
    """An output path that cannot be written: the message says what to give instead."""


def check_output_file(path: Union[str, Path]) -> None:
    """Refuse, before any work is done, an output file path that is a folder or lies
    below a file."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{path} is a folder, not a file: give the path of the file to write")
    _check_parents(path)


def check_output_folder(path: Union[str, Path]) -> None:
    """Refuse, before any work is done, an output folder path that is a file or lies
    below a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{path} is a file, not a folder: give the path of the folder to write")
    _check_parents(path)


def _check_parents(path: Path) -> None:
    above = next((parent for parent in path.parents if parent.exists()), None)
    if above is not None and not above.is_dir():
        raise OutputPathError(f"{above} is a file, not a folder: give another path than {path}")


@contextmanager
def atomic_path(path: Union[str, Path]) -> Iterator[Path]:
    """A temporary path beside `path` to write to: renamed to `path` when the block ends
    without an error, removed when it raises; so `path` never holds a partial file."""
    path = Path(path)
    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: Union[str, Path]) -> Iterator[Path]:
    """A new empty folder beside `path` to fill: put in the place of `path` (replacing
    a folder there) when the block ends without an error, removed when it raises; so
    `path` is never a partial folder. A staging folder left by a killed run is removed."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        replace_folder(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_folder(new: Path, path: Path) -> None:
    """Rename the folder `new` to `path` (on the same file system); an existing `path` is
    moved aside first (a folder cannot be replaced by one rename) and removed after."""
    if not path.exists():
        os.replace(new, path)
        return
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(path, old)
    os.replace(new, path)
    shutil.rmtree(old)


def write_atomic(path: Union[str, Path], data: Union[bytes, str]) -> None:
    """Write bytes, or text as UTF-8, to `path` atomically."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf8")
        else:
            tmp.write_bytes(data)


def read_docbin(path: Union[str, Path], vocab: Vocab) -> List[Doc]:
    """The Docs of a DocBin (.spacy) file, with their user data."""
    path = Path(path)
    if not path.is_file():
        raise DocBinError(f"{path}: no such file")
    try:
        return list(DocBin().from_disk(path).get_docs(vocab))
    except Exception as error:  # OSError, zlib.error, msgpack's errors, KeyError, ...
        detail = str(error).split(". ")[0].rstrip(".")  # spaCy's own advice is for its JSON format
        raise DocBinError(
            f"{path} cannot be read as a DocBin (.spacy) file ({type(error).__name__}: {detail}); "
            "make one with `python -m spacy_concner convert`"
        ) from error


def write_docbin(docs: Iterable[Doc], output: Union[str, Path]) -> None:
    """Save the Docs (with their user data) as a DocBin, atomically."""
    write_atomic(output, DocBin(docs=docs, store_user_data=True).to_bytes())


class ChunkedJob:
    """A long job that writes its result chunk by chunk into OUTPUT.parts/, beside its
    output, so that an interrupted run resumes where it stopped and OUTPUT never holds a
    partial result.

    The folder holds `fingerprint.json` (what the chunks' content depends on: input,
    model, options) and numbered chunk files (00000.spacy, 00000.json, ...), each
    written atomically; a chunk is finished once its `done_suffix` file exists, so a
    chunk of several files writes that one last. A run with the same fingerprint keeps
    the finished chunks of an earlier one, a run with another fingerprint discards them;
    `merge` writes OUTPUT from the chunks' Docs atomically, then removes the folder.
    """

    def __init__(self, output: Union[str, Path], fingerprint: Dict, done_suffix: str = ".spacy"):
        self.output = Path(output)
        self.parts = self.output.with_name(self.output.name + ".parts")
        # compared as JSON: tuples and lists, or int and float keys, are then alike
        self.fingerprint = json.loads(json.dumps(fingerprint))
        self.done_suffix = done_suffix

    def start(self) -> None:
        """Keep the finished chunks of an earlier run of this job; discard others."""
        stamp = self.parts / FINGERPRINT
        if self.parts.exists():
            if stamp.is_file() and json.loads(stamp.read_text(encoding="utf8")) == self.fingerprint:
                # chunk files only: with done_suffix ".json", fingerprint.json matches too
                n_done = len(list(self.parts.glob("[0-9]*" + self.done_suffix)))
                if n_done:
                    msg.info(f"Resuming: {n_done} finished chunks in {self.parts}")
                return
            msg.warn(f"{self.parts} holds chunks of another run (input, model or options differ): discarded")
            shutil.rmtree(self.parts)
        self.parts.mkdir(parents=True)
        write_atomic(stamp, json.dumps(self.fingerprint, indent=2))

    def path(self, index: int, suffix: str = ".spacy") -> Path:
        """The file of chunk `index` with this suffix, e.g. parts/00003.spacy."""
        return self.parts / f"{index:05d}{suffix}"

    def is_done(self, index: int) -> bool:
        return self.path(index, self.done_suffix).exists()

    def merge(self, n_chunks: int, vocab: Vocab) -> List[Doc]:
        """Write the Docs of the chunks' DocBins, in order, to OUTPUT; remove the parts."""
        docs = [doc for index in range(n_chunks) for doc in read_docbin(self.path(index), vocab)]
        write_docbin(docs, self.output)
        shutil.rmtree(self.parts)
        return docs
