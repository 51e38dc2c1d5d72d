"""Files written atomically (whole or not at all) and DocBin files read with one clear error."""
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Union

from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab


class DocBinError(ValueError):
    """A file that is missing or cannot be read as a DocBin: the message says what to do."""


@contextmanager
def atomic_path(path: Union[str, Path]) -> Iterator[Path]:
    """A temporary path beside `path` to write to: renamed to `path` when the block ends
    without an error, removed when it raises; so `path` never holds a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
        raise DocBinError(
            f"{path} cannot be read as a DocBin (.spacy) file ({type(error).__name__}: {error}); "
            "make one with `python -m spacy_concner convert`"
        ) from error
