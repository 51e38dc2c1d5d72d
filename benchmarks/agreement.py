"""How a distilled student's tags agree with its teacher's on the teacher-annotated D_U:
the share of tokens with the same argmax tag, the same on the teacher's entity tokens,
and the confusion matrix (rows: teacher's tag, columns: student's), over the first
--n-docs Docs.

    python benchmarks/agreement.py corpus/es/distill-concner_teacher-n1000-s1.spacy \
        training/es/concner-n1000-s1/model-best
"""
from pathlib import Path

import numpy
import spacy
import torch
import typer

from confidence import label_probs
from spacy_concner.files import read_docbin
from spacy_concner.pipeline import SOFT_TARGETS_KEY


def main(annotated: Path, student: Path, n_docs: int = typer.Option(200)):
    torch.set_num_threads(1)
    nlp = spacy.load(student)
    concner = nlp.get_pipe("concner")
    references = read_docbin(annotated, nlp.vocab)[:n_docs]
    student_tags = label_probs(nlp, references).argmax(axis=1)
    teacher_tags = numpy.concatenate([d.user_data[SOFT_TARGETS_KEY]["probs"] for d in references]).argmax(axis=1)
    same = teacher_tags == student_tags
    print(f"{len(same)} tokens: same tag {same.mean():.3f}, on the teacher's entity tokens {same[teacher_tags > 0].mean():.3f}")
    confusion = numpy.zeros((len(concner.tags),) * 2, dtype=int)
    numpy.add.at(confusion, (teacher_tags, student_tags), 1)
    header = "teacher \\ student"
    width = max(len(tag) for tag in concner.tags) + 1
    print(header + "".join(tag.rjust(width) for tag in concner.tags))
    for tag, row in zip(concner.tags, confusion):
        print(tag.ljust(len(header)) + "".join(str(n).rjust(width) for n in row))


if __name__ == "__main__":
    typer.run(main)
