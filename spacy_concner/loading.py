"""Trained pipelines loaded for the plugin's commands (annotate, evaluate, package): one
error that names the pipeline, or the damaged file, and says what to do, instead of
spaCy's traceback. Files are checked against the pipeline's checksum manifests first
(checksums.py: the concner component writes one, a package one for all its files)."""
from pathlib import Path
from types import TracebackType
from typing import Dict, Optional

from spacy.language import Language

from .checksums import DAMAGED_HINT, DamagedFileError, check_intact


class PipelineError(OSError):
    """A pipeline that cannot be loaded: the message names it and says what to do."""


def load_pipeline(model: str, gpu_id: int = -1, config: Optional[Dict] = None) -> Language:
    """spacy.load of a pipeline folder or an installed package, on GPU `gpu_id` (-1: CPU),
    with the config overrides `config` (dotted keys, as spacy.load takes them)."""
    import spacy

    folder = pipeline_folder(model)
    if folder is not None:
        check_intact(folder, f"the pipeline {model}")
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    try:
        return spacy.load(model, config=config or {})
    except DamagedFileError:
        raise
    except OSError as error:
        raise PipelineError(
            f"cannot load the pipeline {model!r}: give a trained pipeline folder "
            f"(e.g. training/de/concner-n1000-s1/model-best) or an installed package ({error})"
        ) from error
    except Exception as error:  # msgpack's ValueError, KeyError, ...: a file spaCy cannot unpack
        where = file_being_read(error.__traceback__) or model
        raise PipelineError(
            f"{where} cannot be read ({type(error).__name__}: {error}): the pipeline {model} "
            f"is damaged; {DAMAGED_HINT}"
        ) from error


def pipeline_folder(model: str) -> Optional[Path]:
    """The folder with the pipeline's files: MODEL itself, or the data folder of an
    installed package; None when it is neither (spacy.load then says so)."""
    from spacy.util import get_package_path, is_package

    if Path(model).is_dir():
        return Path(model)
    if is_package(model):
        return next((d for d in get_package_path(model).iterdir() if (d / "config.cfg").is_file()), None)
    return None


def file_being_read(traceback: Optional[TracebackType]) -> Optional[Path]:
    """The file spaCy was reading when an error was raised: every component reads its
    files through spacy.util.from_disk, whose innermost call holds the folder and the
    file's name (its locals `path` and `key`)."""
    import spacy.util

    found = None
    while traceback is not None:
        frame = traceback.tb_frame
        if frame.f_code is spacy.util.from_disk.__code__:
            found = Path(frame.f_locals["path"]) / frame.f_locals["key"]
        traceback = traceback.tb_next
    return found
