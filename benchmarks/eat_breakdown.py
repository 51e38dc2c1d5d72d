"""Where EAT translate-test loses F1: in the alignment, or in the English model reading
the translation.

The `eat` pipeline's translator gives, for each sentence of a target test set, the
English text and its word alignment. Scored against the gold entities (seqeval, as
`evaluate`):

- ceiling: the gold entities carried into the English text through the alignment (each
  to the English words that translate its words) and projected back by EAT's own
  projection. EAT with an English model that made no error on the translation would
  score this.
- English model on the translation: its entities against the gold entities carried into
  English, on the English words.
- EAT: its entities projected back (what `evaluate` scores for the `eat` pipeline).
- En on the target text: the same English model on the target words, with no
  translation (the `en` system).

Also counted: the gold entities none of whose words the translation aligns (they cannot
be carried into English) and the sentences whose translation failed; and kept: the first
sentences with a gold entity that the English model finds in the target text and EAT
loses through the translation, with the translation.

    python benchmarks/eat_breakdown.py training/es/eat-n1000-s1 corpus/es/test.spacy --name es-s1

Writes benchmarks/results/eat_breakdown.{json,md}, replacing the record of the same name.
"""
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

import spacy
import torch
import typer
from spacy.tokens import Doc, Span
from spacy.util import filter_spans, minibatch
from tqdm import tqdm

from spacy_concner.corpora import words_only
from spacy_concner.decoding import DECODINGS
from spacy_concner.eat.projection import project_entities, source_block
from spacy_concner.evaluate import iob2_tags, pipe_by_length, read_gold_docs, score_tags
from spacy_concner.tables import markdown_table
from records import read_records, replaced, write_records

RESULTS = Path(__file__).resolve().parent / "results"
SCORES = ("ceiling", "english_on_translation", "eat", "en_on_target")
RECORD_KEY = ("name",)  # --name: a rerun of a name replaces its record
EXAMPLES_SHOWN = 3  # per test set in eat_breakdown.md


def carried_into_english(gold: Doc, english: Doc, sources: Sequence[Set[int]]) -> Tuple[List[Span], int]:
    """The gold entities on the English words that translate their words (the largest
    block, as projection.source_block takes it), without overlaps; and how many gold
    entities no English word translates."""
    spans, unaligned = [], 0
    for ent in gold.ents:
        words = set(range(ent.start, ent.end))
        english_tokens = [i for i, source in enumerate(sources) if source & words]
        if not english_tokens:
            unaligned += 1
            continue
        start, end = source_block(english_tokens)
        spans.append(Span(english, start, end, label=ent.label_))
    return filter_spans(spans), unaligned


def with_ents(doc: Doc, ents: List[Span]) -> Doc:
    """A copy of the Doc whose entities are the spans (of the Doc itself)."""
    copy = doc.copy()
    copy.ents = [Span(copy, e.start, e.end, label=e.label_) for e in ents]
    return copy


def breakdown(pipeline: Path, test: Path, decoding: Optional[str], max_sents: int, batch_size: int,
              n_examples: int) -> Dict:
    """The four scores of the module docstring, the counts, and the first n_examples
    sentences with a gold entity that the English model finds in the target text and EAT
    loses through the translation."""
    nlp = spacy.load(pipeline)
    eat = nlp.get_pipe("eat")
    if decoding:
        eat.decoding = decoding
    gold_docs = read_gold_docs(test, nlp)[: max_sents or None]
    direct_docs = pipe_by_length(eat.english, [words_only(doc, eat.english.vocab) for doc in gold_docs],
                                 batch_size, "English model on the target text")
    tags: Dict[str, Tuple[List, List]] = {name: ([], []) for name in SCORES}
    unaligned = failed = 0
    examples: List[Dict] = []
    progress = tqdm(total=len(gold_docs), desc="translate, tag, project", unit="sent", mininterval=5)
    for batch, direct_batch in zip(minibatch(gold_docs, batch_size), minibatch(direct_docs, batch_size)):
        targets = [words_only(doc, nlp.vocab) for doc in batch]
        tagged = eat.tagged_translations(targets)
        for gold, target, direct, (translation, english, sources) in zip(batch, targets, direct_batch, tagged):
            failed += bool(translation.error)
            carried, n_unaligned = carried_into_english(gold, english, sources)
            unaligned += n_unaligned
            ceiling = with_ents(target, project_entities(target, with_ents(english, carried), sources))
            predicted = with_ents(target, project_entities(target, english, sources))
            for name, reference, output in (
                ("ceiling", gold, ceiling),
                ("english_on_translation", with_ents(english, carried), english),
                ("eat", gold, predicted),
                ("en_on_target", gold, direct),
            ):
                tags[name][0].append(iob2_tags(reference))
                tags[name][1].append(iob2_tags(output))
            lost = spans(gold) & spans(direct) - spans(predicted)
            if lost and len(examples) < n_examples:
                examples.append({"target": gold.text, "english": translation.text,
                                 "lost": [gold[start:end].text + f" ({label})" for start, end, label in sorted(lost)],
                                 "english_entities": [f"{ent.text} ({ent.label_})" for ent in english.ents]})
        progress.update(len(batch))
    progress.close()
    return {
        "pipeline": str(pipeline),
        "test": str(test),
        "decoding": eat.decoding,
        "n_sents": len(gold_docs),
        "n_gold_entities": sum(len(doc.ents) for doc in gold_docs),
        "gold_unaligned": unaligned,
        "failed_translations": failed,
        **{name: rounded(score_tags(*tags[name])) for name in SCORES},
        "examples": examples,
    }


def spans(doc: Doc) -> Set[Tuple[int, int, str]]:
    return {(ent.start, ent.end, ent.label_) for ent in doc.ents}


def rounded(value):
    """The value with its floats (in dicts, at any depth) rounded to 2 decimals."""
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    return round(value, 2) if isinstance(value, float) else value


def markdown(records: List[Dict]) -> str:
    rows = [[r["name"], r["decoding"], r["n_sents"], r["n_gold_entities"],
             f"{100 * r['gold_unaligned'] / max(r['n_gold_entities'], 1):.1f}", r["failed_translations"],
             *(r[name]["f1"] for name in SCORES),
             f"{r['en_on_target']['f1'] - r['english_on_translation']['f1']:.2f}"] for r in records]
    header = ["name", "decoding", "sentences", "gold entities", "gold unaligned (%)", "failed translations",
              "ceiling F1", "English model on the translation F1", "EAT F1", "En on the target text F1",
              "lost to the translation (F1)"]
    per_type = [[r["name"], label, *(r[name]["per_type"].get(label, {}).get("f1", "") for name in SCORES)]
                for r in records for label in sorted(r["eat"]["per_type"])]
    return "\n".join([
        "# Where EAT translate-test loses F1",
        "",
        "seqeval F1 (0-100) against the gold entities of each test set. **ceiling**: the gold entities "
        "carried into the English translation through its word alignment and projected back by EAT's "
        "projection (EAT with an English model that made no error on the translation). **English model on "
        "the translation**: its entities against the gold entities carried into English. **EAT**: its "
        "entities projected back. **En on the target text**: the same English model on the target words, "
        "untranslated. **Lost to the translation**: En on the target text minus the English model on the "
        "translation. Gold unaligned: the gold entities none of whose words the translation aligns. "
        "Written by benchmarks/eat_breakdown.py.",
        "",
        "Commands (each in the project folder whose `eat` workflow made the pipeline: for the "
        "benchmark's, its accuracy.py run folder):",
        "",
        *(f"    {r['command']}" for r in records),
        "",
        markdown_table(header, rows, "ll" + "r" * 9),
        "",
        "Per type, F1 (ceiling, English model on the translation, EAT, En on the target text):",
        "",
        markdown_table(["name", "type", *SCORES], per_type, "ll" + "r" * 4),
        "Sentences with a gold entity that the English model finds in the target text and EAT "
        "loses through the translation (the first of each test set; more in eat_breakdown.json):",
        "",
        *(line for r in records for example in r["examples"][:EXAMPLES_SHOWN] for line in (
            f"- **{r['name']}** {example['target']}",
            f"  - translation: {example['english']}",
            f"  - lost: {'; '.join(example['lost'])}; the English model's entities: "
            f"{'; '.join(example['english_entities']) or 'none'}",
        )),
        "",
    ])


def main(
    pipeline: Path = typer.Argument(..., help="A saved `eat` pipeline (the eat-pipeline step's output)"),
    test: Path = typer.Argument(..., help="The target test set: a DocBin with gold entities"),
    name: str = typer.Option(..., help="Name of the record, e.g. es-s1"),
    decoding: Optional[str] = typer.Option(None, help=f"Decoding of the English model: {', '.join(DECODINGS)} (default: its own)"),
    max_sents: int = typer.Option(0, help="Only the first N sentences (0: all)"),
    batch_size: int = typer.Option(64),
    examples: int = typer.Option(8, help="Keep this many sentences with an entity En finds in the target text and EAT loses"),
    threads: int = typer.Option(1, help="torch threads"),
    results: Path = typer.Option(RESULTS, help="Folder of eat_breakdown.{json,md}"),
):
    """Score EAT's ceiling, the English model on the translation, EAT and En on one test set."""
    torch.set_num_threads(threads)
    record = {"name": name, **breakdown(pipeline, test, decoding, max_sents, batch_size, examples)}
    options = (f" --decoding {decoding}" if decoding else "") + (f" --max-sents {max_sents}" if max_sents else "")
    record["command"] = f"python benchmarks/eat_breakdown.py {pipeline} {test} --name {name}{options}"
    path = results / "eat_breakdown.json"
    records = replaced(read_records(path, RECORD_KEY), record, RECORD_KEY)
    write_records(path, records, markdown(records))
    print(json.dumps({"name": name, "gold_unaligned": record["gold_unaligned"],
                      **{score: record[score]["f1"] for score in SCORES}}))


if __name__ == "__main__":
    typer.run(main)
