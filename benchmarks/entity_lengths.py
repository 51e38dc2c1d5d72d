"""Gold and predicted entities of a test set by type and length in tokens (1, 2, 3+),
over its first --n-docs Docs: shows whether a model predicts multi-token entities of
each type (a token classifier that never predicts I-LOC splits "La Coruña" into two LOC).

    python benchmarks/entity_lengths.py corpus/es/test.spacy training/es/concner_teacher-n1000-s1/model-best
"""
from collections import Counter
from pathlib import Path

import spacy
import torch
import typer

from spacy_concner.corpora import words_only
from spacy_concner.files import read_docbin
from spacy_concner.tables import markdown_table

LENGTHS = ("1", "2", "3+")


def length_counts(docs) -> Counter:
    return Counter((ent.label_, LENGTHS[min(len(ent), 3) - 1]) for doc in docs for ent in doc.ents)


def main(test: Path, model: Path, n_docs: int = typer.Option(300)):
    torch.set_num_threads(1)
    nlp = spacy.load(model)
    gold = read_docbin(test, nlp.vocab)[:n_docs]
    pred = nlp.pipe(words_only(doc, nlp.vocab) for doc in gold)
    gold_counts, pred_counts = length_counts(gold), length_counts(pred)
    labels = sorted({label for label, _ in gold_counts | pred_counts})
    print(f"{model} on the first {len(gold)} Docs of {test}: gold / predicted entities")
    rows = [[label, *(f"{gold_counts[label, n]} / {pred_counts[label, n]}" for n in LENGTHS)] for label in labels]
    print(markdown_table(["type", *(f"{n} token(s)" for n in LENGTHS)], rows, align="l" + "r" * len(LENGTHS)), end="")


if __name__ == "__main__":
    typer.run(main)
