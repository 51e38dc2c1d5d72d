"""Trained pipelines loaded for the plugin's commands (annotate, evaluate): one error that
names the pipeline and says what to give instead of spaCy's traceback."""
from spacy.language import Language


class PipelineError(OSError):
    """A pipeline that cannot be loaded: the message names it and says what to do."""


def load_pipeline(model: str, gpu_id: int = -1) -> Language:
    """spacy.load of a pipeline folder or an installed package, on GPU `gpu_id` (-1: CPU)."""
    import spacy

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    try:
        return spacy.load(model)
    except OSError as error:
        raise PipelineError(
            f"cannot load the pipeline {model!r}: give a trained pipeline folder "
            f"(e.g. training/de/concner-n1000-s1/model-best) or an installed package ({error})"
        ) from error
