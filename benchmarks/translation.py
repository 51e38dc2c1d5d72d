"""Translation benchmark: speed, entity survival and dictionary coverage of the
offline translators on 1,000 English sentences sampled from CoNLL-2003 train (seed 1).

Each translator runs through the `translate` command's code path (chunks, report). The
lexicon is timed twice: parsing the dictionaries into an empty cache, then loading the
cache. Five source/translation pairs per backend, entities marked, go into the Markdown
and, with --readme, into docs/translation.md between the translation-examples markers.

    python benchmarks/translation.py --readme

Writes benchmarks/results/translation.json and translation.md.
"""
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

import typer
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from data_dir import DATA_DIR, corpus_file
from spacy_concner.corpora import read_docs
from spacy_concner.translate import get_translator
from spacy_concner.tables import markdown_table
from spacy_concner.translate.cli import translate_docbin

ROOT = Path(__file__).resolve().parent.parent
RUNS = [  # (translator, pair): the backend of each benchmark language
    ("apertium", "eng-spa"),
    ("lexicon", "eng-deu"),
    ("lexicon", "eng-nld"),
    ("lexicon", "eng-zho"),
    ("lexicon", "eng-ara"),
    ("lexicon", "eng-hin"),
]
README_START, README_END = "<!-- translation-examples:start -->", "<!-- translation-examples:end -->"


def main(
    data_dir: Path = typer.Option(DATA_DIR, help="Corpus folder (env SPACY_CONCNER_DATA)"),
    n_sents: int = typer.Option(1000, help="Sentences sampled from CoNLL-2003 train"),
    seed: int = typer.Option(1),
    results: Path = typer.Option(ROOT / "benchmarks" / "results"),
    readme: bool = typer.Option(False, "--readme", help="Put the examples into docs/translation.md"),
) -> None:
    docs = read_docs(corpus_file(data_dir, "conll2003/en/eng.train"), Vocab(), n_sents=n_sents, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "en.spacy"
        DocBin(docs=docs, store_user_data=True).to_disk(source)
        records = [run(translator, pair, source, Path(tmp)) for translator, pair in RUNS]
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0], "source": "conll2003/en/eng.train", "n_sents": n_sents, "seed": seed}
    results.mkdir(parents=True, exist_ok=True)
    (results / "translation.json").write_text(json.dumps({"meta": meta, "runs": records}, indent=2, ensure_ascii=False) + "\n", encoding="utf8")
    (results / "translation.md").write_text(markdown(meta, records), encoding="utf8")
    if readme:
        write_readme_examples(records)
    typer.echo((results / "translation.md").read_text(encoding="utf8"))


def run(translator: str, pair: str, source: Path, tmp: Path) -> Dict:
    """One translator on the sample: its report, validity of the output, timings, examples."""
    config = {"pair": pair}
    record = {"translator": translator, "pair": pair}
    if translator == "lexicon":
        config["cache_dir"] = str(tmp / "lexicons")
        record["cache_build_seconds"] = _seconds(lambda: get_translator(translator, **config))
        record["cache_load_seconds"] = _seconds(lambda: get_translator(translator, **config))
    backend = get_translator(translator, **config)
    output = tmp / f"{pair}.spacy"
    started = time.perf_counter()
    report = translate_docbin(source, output, backend, {"translator": translator, **config}, None, 500, tmp / f"{pair}.json")
    record["wall_seconds"] = round(time.perf_counter() - started, 3)
    translated = list(DocBin().from_disk(output).get_docs(Vocab()))
    record["iob2_invalid_sentences"] = sum(not iob2_valid(doc) for doc in translated)
    record["report"] = {key: value for key, value in report.items() if key not in ("source", "output", "config")}
    notes = report["notes"]
    if "tokens" in notes:
        record["non_entity_tokens_translated"] = round(notes["tokens_translated"] / notes["tokens"], 4)
        record["entity_tokens_translated"] = round(notes["entity_tokens_translated"] / notes["entity_tokens"], 4)
    sources = {doc.user_data["concner_pair"]: doc for doc in DocBin().from_disk(source).get_docs(Vocab())}
    record["examples"] = [
        {"source": marked(sources[doc.user_data["concner_pair"]]), "translation": marked(doc)}
        for doc in examples(translated)
    ]
    return record


def _seconds(task) -> float:
    started = time.perf_counter()
    task()
    return round(time.perf_counter() - started, 3)


def iob2_valid(doc: Doc) -> bool:
    """Every I- tag continues an entity of the same type."""
    previous = "O"
    for token in doc:
        tag = f"{token.ent_iob_}-{token.ent_type_}" if token.ent_iob_ in ("B", "I") else "O"
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def examples(docs: List[Doc], n: int = 5) -> List[Doc]:
    """The first n translations with at least two entities and at most 25 tokens."""
    return [doc for doc in docs if len(doc.ents) >= 2 and len(doc) <= 25][:n]


def marked(doc: Doc) -> str:
    """The Doc's text with entities as [LABEL words]."""
    out, position = [], 0
    for ent in doc.ents:
        out.append(doc.text[position : ent.start_char])
        out.append(f"[{ent.label_} {ent.text}]")
        position = ent.end_char
    return ("".join(out) + doc.text[position:]).strip()


def markdown(meta: Dict, records: List[Dict]) -> str:
    lines = [
        "# Translation benchmark",
        "",
        f"{meta['n_sents']} English sentences sampled from CoNLL-2003 train (seed {meta['seed']}); "
        f"{meta['date']}, {meta['cpus']} CPUs shared with other jobs (load average {meta['load_average_1min']:.1f} at the end). Command: `python benchmarks/translation.py --readme`.",
        "Throughput = sentences / seconds spent translating (the translate command's report); "
        "survival = output entities / source entities.",
        "",
    ]
    header = ["translator", "pair", "sentences/s", "survival", "dropped", "invalid spans", "IOB2-invalid",
              "non-entity tokens translated", "cache build s", "cache load s"]
    rows = [
        [
            r["translator"], r["pair"], f"{r['report']['sentences_per_second']:.0f}",
            f"{r['report']['entity_survival']['total']:.1%}", r["report"]["sentences_dropped"],
            r["report"]["invalid_entities"], r["iob2_invalid_sentences"],
            _percent(r.get("non_entity_tokens_translated")), r.get("cache_build_seconds", ""),
            r.get("cache_load_seconds", ""),
        ]
        for r in records
    ]
    lines.append(markdown_table(header, rows, align="llrrrrrrrr").rstrip("\n"))
    lines += ["", "Apertium entities split apart by reordering (see markers.merge_pieces): "
              + ", ".join(f"{r['report']['notes'].get('split_entities', 0)}" for r in records if r["translator"] == "apertium"), ""]
    return "\n".join(lines + [examples_markdown(records)])


def _percent(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.1%}"


def examples_markdown(records: List[Dict]) -> str:
    lines = []
    for r in records:
        lines += [f"**{r['translator']} {r['pair']}**", "", "```"]
        for example in r["examples"]:
            lines += [f"en: {example['source']}", f"{r['pair'][-3:]}: {example['translation']}", ""]
        lines[-1:] = ["```", ""]
    return "\n".join(lines)


def write_readme_examples(records: List[Dict]) -> None:
    readme = ROOT / "docs" / "translation.md"
    text = readme.read_text(encoding="utf8")
    if README_START not in text or README_END not in text:
        raise typer.BadParameter(f"{readme} has no {README_START} ... {README_END} block")
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    readme.write_text(f"{head}{README_START}\n{examples_markdown(records)}{README_END}{tail}", encoding="utf8")


if __name__ == "__main__":
    typer.run(main)
