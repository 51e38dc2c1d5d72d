"""What is left for the contrastive losses to learn: TCL and LCL (temperature 0.1, as in
the configs) of a model's token vectors over the English sample and its translation, in
the batches of 32 pairs the teacher trains on, and how often a sentence's most similar
other sentence in its batch is its translation (in-batch retrieval). Measured on the bare
encoder (--encoder: the first model's pipeline with the encoder's own weights), the En
model (trained without either loss) and the ConCNER teacher (trained with both), it says
how much of what the losses ask for the encoder already does.

    python benchmarks/contrast_headroom.py corpus/conll2003-en/train-n1000-s1.spacy \\
        corpus/es/trans-n1000-s1.spacy en=training/conll2003-en/en-n1000-s1/model-best \\
        teacher=training/es/concner_teacher-n1000-s1/model-best \\
        --encoder assets/encoders/e5-small --output benchmarks/results/contrast_headroom/es-s1.json

Writes the JSON and a Markdown table beside it (.md); the values are means over batches.
"""
import json
import math
from pathlib import Path
from typing import Dict, List

import numpy
import spacy
import torch
import typer
from spacy.training import Example
from thinc.api import fix_random_seed

from spacy_concner.files import write_atomic
from spacy_concner.losses import LabelContrastiveLoss, TranslationContrastiveLoss, sentence_contrast
from spacy_concner.pairs import configure_pair_batcher_v2, create_paired_corpus_v2, pair_key, partner_rows
from spacy_concner.tables import markdown_table

TEMPERATURE = 0.1
BATCH_PAIRS = 32


def encoder_pipeline(model: Path, encoder: Path):
    """The pipeline of `model` with its encoder's weights replaced by the bare encoder's."""
    from transformers import AutoModel

    nlp = spacy.load(model)
    transformer = nlp.get_pipe("transformer").model.transformer
    transformer.load_state_dict(AutoModel.from_pretrained(str(encoder)).state_dict())
    return nlp


def pair_batches(nlp, source: Path, translation: Path, seed: int) -> List[List[Example]]:
    """The English sample and its translation in training's batches of pairs (seeded)."""
    examples = list(create_paired_corpus_v2(source, translation, None, True, 0, 0)(nlp))
    fix_random_seed(seed)
    return list(configure_pair_batcher_v2(BATCH_PAIRS)(examples))


def batch_measures(nlp, batch: List[Example]) -> Dict[str, float]:
    """TCL, LCL and the in-batch retrieval of one batch."""
    concner = nlp.get_pipe("concner")
    docs = list(nlp.get_pipe("transformer").pipe([eg.predicted for eg in batch]))
    vectors, _ = concner.model.predict(docs)
    if vectors is None:
        raise ValueError("the model has a projection head: its contrasted vectors exist in training only")
    keys = [pair_key(eg) for eg in batch]
    lengths = [len(doc) for doc in docs]
    flat = numpy.concatenate(vectors)
    gold = numpy.concatenate([concner.gold_tag_ids(eg) for eg in batch])
    labelled = gold >= 0
    _, tcl = sentence_contrast(TranslationContrastiveLoss(TEMPERATURE), flat, lengths, list(range(len(docs))), keys)
    _, lcl = LabelContrastiveLoss(TEMPERATURE)(flat[labelled], gold[labelled])
    sentences = numpy.stack([v.mean(axis=0) for v in vectors])
    sentences /= numpy.linalg.norm(sentences, axis=1, keepdims=True)
    similarity = sentences @ sentences.T
    numpy.fill_diagonal(similarity, -numpy.inf)
    partners = numpy.asarray(partner_rows(keys))
    paired = partners >= 0
    hits = similarity.argmax(axis=1)[paired] == partners[paired]
    return {"tcl": float(tcl), "lcl": float(lcl), "lcl_floor": lcl_floor(gold[labelled]),
            "hits": int(hits.sum()), "paired": int(paired.sum()), "docs": len(docs)}


def lcl_floor(labels: numpy.ndarray) -> float:
    """LCL's lowest value for these labels: each token's loss is at least the log of its
    positives, reached when the tokens of a label coincide and the other labels are far
    (supervised_contrastive); the mean over the tokens that have a positive."""
    counts = numpy.bincount(labels)
    counts = counts[counts >= 2]
    return float((counts * numpy.log(counts - 1)).sum() / counts.sum())


def measure(name: str, nlp, batches: List[List[Example]]) -> Dict:
    per_batch = [batch_measures(nlp, batch) for batch in batches]
    return {
        "model": name,
        "tcl": round(float(numpy.mean([b["tcl"] for b in per_batch])), 3),
        "lcl": round(float(numpy.mean([b["lcl"] for b in per_batch])), 3),
        "lcl_floor": round(float(numpy.mean([b["lcl_floor"] for b in per_batch])), 3),
        "retrieval": round(100 * sum(b["hits"] for b in per_batch) / sum(b["paired"] for b in per_batch), 2),
        # TCL if every sentence were as similar to every other: log(others in the batch)
        "tcl_uniform": round(float(numpy.mean([math.log(b["docs"] - 1) for b in per_batch])), 3),
        "batches": len(per_batch),
    }


def markdown(records: List[Dict], command: str) -> str:
    rows = [[r["model"], r["tcl"], r["tcl_uniform"], r["retrieval"], r["lcl"], r["lcl_floor"]] for r in records]
    header = ["model", "TCL", "TCL if all alike", "in-batch retrieval (%)", "LCL", "LCL's floor"]
    table = markdown_table(header, rows, "lrrrrr")
    return f"# What is left for the contrastive losses\n\n    {command}\n\n{table}\n"


def main(
    source: Path,
    translation: Path,
    models: List[str] = typer.Argument(..., help="NAME=MODEL folders"),
    encoder: Path = typer.Option(None, help="also measure the bare encoder, in the first model's pipeline"),
    seed: int = typer.Option(1),
    output: Path = typer.Option(Path("contrast_headroom.json")),
):
    torch.set_num_threads(1)
    named = [m.split("=", 1) for m in models]
    if any(len(pair) != 2 for pair in named):
        raise typer.BadParameter(f"models are NAME=MODEL, got {models}")
    pipelines = [(name, lambda path=Path(path): spacy.load(path)) for name, path in named]
    if encoder is not None:
        pipelines.insert(0, ("encoder", lambda: encoder_pipeline(Path(named[0][1]), encoder)))
    records = []
    for name, load in pipelines:
        nlp = load()
        records.append(measure(name, nlp, pair_batches(nlp, source, translation, seed)))
        print(records[-1], flush=True)
    command = "python benchmarks/contrast_headroom.py " + " ".join(
        [str(source), str(translation), *models] + ([f"--encoder {encoder}"] if encoder else []))
    write_atomic(output, json.dumps({"command": command, "records": records}, indent=1) + "\n")
    write_atomic(output.with_suffix(".md"), markdown(records, command))


if __name__ == "__main__":
    typer.run(main)
