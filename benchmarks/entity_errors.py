"""Where a model's entities differ from a reference: precision, recall and F1 per type,
the most frequent false and missed spans of each type, and how many tokens the false
spans have (a model that splits names predicts many false one-token spans). The
reference is the gold entities of the DocBin, or with --against the entities another
model predicts on the same words (the agreement of a student with its teacher: no
labels are read).

    python benchmarks/entity_errors.py training/es/concner-n1000-s3/model-best corpus/es/test.spacy --label MISC
    python benchmarks/entity_errors.py STUDENT corpus/nl/dev.spacy --against TEACHER
    python benchmarks/entity_errors.py TEACHER corpus/nl/test.spacy --skip-name "De Morgen"

Each model decodes as its config says, or as --decoding sets (the token classifiers of a
run trained with greedy decoding, scored with Viterbi); the JSON names the decoding.
"""
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import spacy
import torch
import typer
from spacy.tokens import Doc

from spacy_concner.corpora import words_only
from spacy_concner.decoding import DECODINGS, pipeline_decoding
from spacy_concner.files import read_docbin


@dataclass
class TypeErrors:
    correct: int = 0
    false: Counter = field(default_factory=Counter)  # predicted, not in the reference
    missed: Counter = field(default_factory=Counter)  # in the reference, not predicted
    false_lengths: Counter = field(default_factory=Counter)  # false spans by their tokens

    def scores(self) -> Dict[str, float]:
        predicted, reference = self.correct + sum(self.false.values()), self.correct + sum(self.missed.values())
        p = self.correct / predicted if predicted else 0.0
        r = self.correct / reference if reference else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {"precision": round(100 * p, 2), "recall": round(100 * r, 2), "f1": round(100 * f, 2),
                "predicted": predicted, "reference": reference}


def entity_errors(predicted: Iterable[Doc], reference: Iterable[Doc]) -> Dict[str, TypeErrors]:
    """Per entity type (and "ALL"): exact-span matches, false and missed span texts.
    The Docs of both sides have the same words."""
    errors: Dict[str, TypeErrors] = {}
    for pred, ref in zip(predicted, reference):
        spans_p = {(e.start, e.end, e.label_): e.text for e in pred.ents}
        spans_r = {(e.start, e.end, e.label_): e.text for e in ref.ents}
        for key in spans_p.keys() | spans_r.keys():
            for label in (key[2], "ALL"):
                errors_of = errors.setdefault(label, TypeErrors())
                if key in spans_p and key in spans_r:
                    errors_of.correct += 1
                elif key in spans_p:
                    errors_of.false[spans_p[key]] += 1
                    errors_of.false_lengths[key[1] - key[0]] += 1
                else:
                    errors_of.missed[spans_r[key]] += 1
    return errors


def without_names(predicted: List[Doc], reference: List[Doc], names: Sequence[str]) -> List[Tuple[Doc, Doc]]:
    """The (predicted, reference) pairs but those whose reference has an entity with one of the texts `names`."""
    return [(pred, ref) for pred, ref in zip(predicted, reference) if not any(e.text in names for e in ref.ents)]


def predict(model: Path, docs: List[Doc], decoding: Optional[str] = None) -> Tuple[List[Doc], Optional[str]]:
    """The model's Docs of the words of `docs`, and the decoding they were made with."""
    nlp = spacy.load(model)
    used = pipeline_decoding(nlp, decoding)
    return list(nlp.pipe((words_only(doc, nlp.vocab) for doc in docs), batch_size=128)), used


def main(
    model: Path = typer.Argument(..., help="Pipeline whose entities are checked"),
    docbin: Path = typer.Argument(..., help="Its input (.spacy); the gold entities are the reference unless --against"),
    against: Optional[Path] = typer.Option(None, help="Pipeline whose predictions are the reference instead"),
    label: Optional[str] = typer.Option(None, help="List the spans of this type only"),
    top: int = typer.Option(20, help="Most frequent false and missed spans to list"),
    output: Optional[Path] = typer.Option(None, help="Also write the figures as JSON"),
    skip_name: List[str] = typer.Option([], help="Leave out the sentences with a reference entity of this text "
                                        "(what one frequent name weighs in the scores); repeatable"),
    decoding: Optional[str] = typer.Option(None, help=f"Decoding of both models: {', '.join(DECODINGS)} (default: each its own)"),
) -> None:
    torch.set_num_threads(1)
    docs = read_docbin(docbin, spacy.blank("xx").vocab)
    reference = docs if against is None else predict(against, docs, decoding)[0]
    predicted, used = predict(model, docs, decoding)
    pairs = without_names(predicted, reference, skip_name)
    if skip_name:
        print(f"Left out {len(docs) - len(pairs)} of {len(docs)} sentences, those with {', '.join(skip_name)}")
    errors = entity_errors(*zip(*pairs)) if pairs else {}
    figures = {}
    for name in sorted(errors, key=lambda n: (n != "ALL", n)):
        figures[name] = {**errors[name].scores(), "false": errors[name].false.most_common(top),
                         "missed": errors[name].missed.most_common(top),
                         "false_by_tokens": dict(sorted(errors[name].false_lengths.items()))}
        s = figures[name]
        print(f"{name}: P {s['precision']} R {s['recall']} F1 {s['f1']} ({s['predicted']} predicted, {s['reference']} in the reference)")
    for name in [label] if label else [n for n in figures if n != "ALL"]:
        if name not in figures:
            raise typer.BadParameter(f"no {name} entities predicted or in the reference")
        print(f"{name} false: {figures[name]['false']}\n{name} missed: {figures[name]['missed']}\n"
              f"{name} false spans by tokens: {figures[name]['false_by_tokens']}")
    if output is not None:
        output.write_text(json.dumps({"model": str(model), "docbin": str(docbin), "against": str(against or "gold"),
                                      "decoding": used, "skipped_names": skip_name, "skipped_sentences": len(docs) - len(pairs),
                                      "types": figures}, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    typer.run(main)
