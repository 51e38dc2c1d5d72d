"""How confident concner pipelines are: the mean and median, over the tokens of the
first --n-docs Docs of a DocBin, of the largest label probability.

    python benchmarks/confidence.py corpus/de/unlabelled-2000-s1.spacy \
        training/wikiann-en/en-n1000-s1/model-best training/de/concner_teacher-n1000-s1/model-best
"""
from pathlib import Path
from typing import List

import numpy
import spacy
import torch
import typer
from spacy.tokens import Doc

from spacy_concner.corpora import words_only
from spacy_concner.files import read_docbin


def label_probs(nlp, references: List[Doc]):
    """The concner component's label distributions over the tokens of `references`,
    concatenated (the words are re-used, the annotation is not)."""
    docs = [words_only(d, nlp.vocab) for d in references]
    docs = list(nlp.get_pipe("transformer").pipe(docs))
    return numpy.concatenate(nlp.get_pipe("concner").predict(docs))


def main(docbin: Path, models: List[Path], n_docs: int = typer.Option(200)):
    torch.set_num_threads(1)
    for model in models:
        nlp = spacy.load(model)
        top = label_probs(nlp, read_docbin(docbin, nlp.vocab)[:n_docs]).max(axis=1)
        print(f"{model}: mean max probability {top.mean():.3f}, median {numpy.median(top):.3f}")


if __name__ == "__main__":
    typer.run(main)
