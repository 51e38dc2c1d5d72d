"""Greedy against Viterbi decoding of the accuracy benchmark's trained models: how many
F1 points the most likely valid IOB2 sequence adds to each token's most likely tag.

    python benchmarks/decoding.py --runs runs --systems en,concner_teacher,concner --langs es,nl,de --seeds 1,2,3

For every record of results/accuracy.json of the given recipe, systems, languages and
seeds whose model has a `concner` component (not mcl_ner's grid, not eat), the
model-best of the record's training folder, in its accuracy.py run folder, predicts the
tag distributions of the run folder's target test set once, in evaluate's batches; each
decoding (spacy_concner.decoding) turns them into entities, scored as `evaluate` scores
(seqeval). The greedy F1 must be the record's own (the same model and test set were
read), or the result is not kept. Also counted: the gold entities of two or more
tokens, and how many of them a decoding splits into two or more predicted entities
inside their span (the type flip B-LOC I-ORG that greedy decoding reads as two
entities).

Writes to --results: decoding.json (one record per accuracy record; a rerun skips the
records it has) and decoding.md from all of decoding.json (the records and the mean gain
per system and language), both after each record, or once when there is nothing to score.
"""
import statistics
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import typer

from accuracy import RECIPE, RECORD_KEY, TARGETS, mean_std, run_path, split_option
from records import key_of, read_records, write_records
from spacy_concner.corpora import words_only
from spacy_concner.decoding import DECODINGS
from spacy_concner.entity_pipe import iob2_to_spans
from spacy_concner.evaluate import iob2_tags, pipe_by_length, score_tags
from spacy_concner.files import read_docbin
from spacy_concner.loading import load_pipeline
from spacy_concner.pipeline import ConcNER
from spacy_concner.tables import markdown_table

BATCH_SIZE = 64  # evaluate's: the same batches pad the same way, so greedy F1 is the record's


def decoded_tags(nlp, name: str, docs: List, batch_size: int = BATCH_SIZE) -> Dict[str, List[List[str]]]:
    """The IOB2 tags of each decoding of the concner component `name` for the Docs,
    from one pass of the encoder."""
    concner = nlp.get_pipe(name)
    with nlp.select_pipes(disable=[name]):
        encoded = pipe_by_length(nlp, docs, batch_size, "encoder")
    probs = [p for i in range(0, len(encoded), batch_size) for p in concner.predict(encoded[i:i + batch_size])]
    tags = {}
    for decoding in DECODINGS:
        concner.decoding = decoding
        concner.set_annotations(encoded, probs)
        tags[decoding] = [iob2_tags(doc) for doc in encoded]
    return tags


def split_entities(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> int:
    """Gold entities of 2+ tokens with 2+ predicted entities inside their span."""
    split = 0
    for gold_tags, pred_tags in zip(gold, pred):
        predicted = iob2_to_spans(pred_tags)
        for start, end, _ in iob2_to_spans(gold_tags):
            inside = [span for span in predicted if span[0] >= start and span[1] <= end]
            split += end - start >= 2 and len(inside) >= 2
    return split


def measure(record: Dict, runs: Path) -> Optional[Dict]:
    """The decoding record of one accuracy record; None if its model has no concner."""
    source = TARGETS["targets"][record["lang"]]["source_name"]
    folder = run_path(runs, {"source_name": source, **record}, record["recipe"])
    model = folder / record["model"] / "model-best"
    nlp = load_pipeline(str(model))
    names = [name for name, pipe in nlp.pipeline if isinstance(pipe, ConcNER)]
    if len(names) != 1:
        return None
    test = folder / "corpus" / record["lang"] / "test.spacy"
    gold_docs = read_docbin(test, nlp.vocab)
    gold = [iob2_tags(doc) for doc in gold_docs]
    tags = decoded_tags(nlp, names[0], [words_only(doc, nlp.vocab) for doc in gold_docs])
    result = {key: record[key] for key in ("recipe", "system", "lang", "n_source", "seed")}
    result.update(record_f1=record["f1"], model=f"{folder.name}/{record['model']}/model-best",
                  gold_multi_token=sum(end - start >= 2 for tags_ in gold for start, end, _ in iob2_to_spans(tags_)))
    for decoding, pred in tags.items():
        scores = score_tags(gold, pred)
        result[decoding] = {"precision": round(scores["precision"], 2), "recall": round(scores["recall"], 2),
                            "f1": round(scores["f1"], 2), "split": split_entities(gold, pred)}
    return result


def markdown(records: List[Dict]) -> str:
    rows = [[r["system"], r["lang"], r["seed"], r["record_f1"], r["greedy"]["f1"], r["viterbi"]["f1"],
             f"{r['viterbi']['f1'] - r['greedy']['f1']:+.2f}", r["gold_multi_token"],
             r["greedy"]["split"], r["viterbi"]["split"]] for r in records]
    groups: Dict = {}
    for r in records:
        groups.setdefault((r["system"], r["lang"]), []).append(r)
    means = [[system, lang, len(group), mean_std([r["greedy"]["f1"] for r in group]),
              mean_std([r["viterbi"]["f1"] for r in group]),
              *(f"{f(r['viterbi']['f1'] - r['greedy']['f1'] for r in group):+.2f}" for f in (statistics.mean, min, max))]
             for (system, lang), group in sorted(groups.items())]
    return "\n".join([
        "# Decoding: greedy against Viterbi",
        "",
        "Test F1 (seqeval entity-level micro) of the accuracy benchmark's models with each token's "
        "most likely tag (greedy, as their records) and with the most likely valid IOB2 sequence "
        "(Viterbi, the components' default), from one prediction of the tag distributions. "
        "Checkpoints are the records' (chosen on English dev with greedy decoding). Split: gold "
        "entities of two or more tokens with two or more predicted entities inside. Written by "
        "benchmarks/decoding.py.",
        "",
        "    python benchmarks/decoding.py --runs runs --langs LANGS --systems SYSTEMS --seeds SEEDS",
        "",
        "## Per system and language (mean ± std over seeds)",
        "",
        markdown_table(["system", "lang", "seeds", "greedy F1", "Viterbi F1", "gain (mean)", "min", "max"], means,
                       "lllrrrrr"),
        "## Records",
        "",
        markdown_table(["system", "lang", "seed", "record F1", "greedy F1", "Viterbi F1", "gain",
                        "gold 2+ tokens", "split (greedy)", "split (Viterbi)"], rows, "lllrrrrrrr"),
    ])


def main(
    runs: Path = typer.Option(..., help="accuracy.py's folder of run folders"),
    systems: str = typer.Option("en,concner_teacher,concner", help="Systems, comma separated"),
    langs: str = typer.Option("es,nl,de", help="Languages, comma separated"),
    seeds: str = typer.Option("1,2,3", help="Seeds, comma separated"),
    recipe: int = typer.Option(RECIPE, help="Recipe of the records"),
    results: Path = typer.Option(Path(__file__).parent / "results", help="Folder of accuracy.json and the output"),
    threads: int = typer.Option(1, min=1, help="Torch threads"),
) -> None:
    """Score the asked records' models with both decodings."""
    torch.set_num_threads(threads)
    out = results / "decoding.json"
    done = read_records(out, RECORD_KEY)
    have = {key_of(r, RECORD_KEY) for r in done}
    asked = [r for r in read_records(results / "accuracy.json", RECORD_KEY)
             if r["recipe"] == recipe and r["system"] in split_option(systems) and r["lang"] in split_option(langs)
             and str(r["seed"]) in split_option(seeds) and key_of(r, RECORD_KEY) not in have]
    for i, record in enumerate(asked, 1):
        typer.echo(f"=== {i}/{len(asked)}: {record['system']} {record['lang']} seed {record['seed']}")
        result = measure(record, runs)
        if result is None:
            typer.echo("    no concner component: skipped")
            continue
        typer.echo(f"    F1 greedy {result['greedy']['f1']} (record {result['record_f1']}), Viterbi {result['viterbi']['f1']}")
        if result["greedy"]["f1"] != result["record_f1"]:
            typer.echo("    the greedy F1 is not the record's: the model or test set on disk is not the record's; not kept")
            continue
        done.append(result)
        done.sort(key=lambda r: (r["lang"], r["system"], r["seed"]))
        write_records(out, done, markdown(done) + "\n")  # after each: a rerun resumes from it
    if done and not asked:  # nothing to score: the table afresh (after a change of the report)
        write_records(out, done, markdown(done) + "\n")


if __name__ == "__main__":
    typer.run(main)
