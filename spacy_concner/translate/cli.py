"""The `translate` command: a DocBin of English Docs -> a DocBin of their translations.

Work goes in chunks (files.ChunkedJob: OUTPUT.parts/ holds each chunk's DocBin and its
statistics), so that an interrupted run resumes where it stopped; the JSON report and the
final DocBin are written at the end.
"""
import json
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

import typer
from spacy.tokens import Doc
from spacy.vocab import Vocab
from tqdm import tqdm
from wasabi import msg

from ..files import ChunkedJob, OutputPathError, check_output_file, read_docbin, write_atomic, write_docbin
from ..pairs import PAIR_KEY
from . import BackendMissing, Translation, Translator, get_translator, translate_docs


def translate_cli(
    source: Path = typer.Argument(..., exists=True, dir_okay=False, help="DocBin of English Docs with entities"),
    output: Path = typer.Argument(..., help="Output DocBin of the translations"),
    translator: str = typer.Option("apertium", help="Registered translator: apertium, lexicon, hf_seq2seq, codeswitch, ..."),
    pair: Optional[str] = typer.Option(None, help="apertium, lexicon, codeswitch (required for them): language pair, e.g. eng-spa, eng-deu"),
    model: Optional[Path] = typer.Option(None, help="hf_seq2seq: local model folder"),
    lang: Optional[str] = typer.Option(None, help="hf_seq2seq: target language (spaCy code)"),
    cache_dir: Optional[Path] = typer.Option(None, help="lexicon, codeswitch: parsed dictionaries [default: $SPACY_CONCNER_LEXICONS or assets/lexicons]"),
    ratio: Optional[float] = typer.Option(None, help="codeswitch: probability that a dictionary word or phrase is switched [default: 0.5]"),
    seed: Optional[int] = typer.Option(None, help="codeswitch: random seed, combined with each sentence's pair key [default: 0]"),
    split_chars: Optional[bool] = typer.Option(None, "--split-chars/--no-split-chars", help="One token per character [default: on for zh, ja]"),
    chunk_size: int = typer.Option(500, min=1, help="Sentences per atomically written chunk"),
    report: Optional[Path] = typer.Option(None, help="JSON report [default: OUTPUT with .json suffix]"),
) -> None:
    """Translate English Docs, projecting their entities; resumes an interrupted run."""
    options = {"pair": pair, "model": str(model) if model else None, "lang": lang,
               "cache_dir": str(cache_dir) if cache_dir else None, "ratio": ratio, "seed": seed}
    config = {key: value for key, value in options.items() if value is not None}
    report = report or output.with_suffix(".json")
    try:
        for path in (output, report):
            check_output_file(path)
        backend = get_translator(translator, **config)
        summary = translate_docbin(
            source, output, backend, {"translator": translator, **config}, split_chars, chunk_size, report
        )
    except (BackendMissing, ValueError, FileNotFoundError, OutputPathError) as error:
        msg.fail(str(error), exits=1)
    shares = "".join(f", {key} {share:.1%}" for key, share in summary["note_shares"].items() if share is not None)
    msg.good(
        f"{output}: {summary['sentences_out']} of {summary['sentences_in']} sentences, entity survival "
        f"{summary['entity_survival']['total']:.1%}{shares}, {summary['sentences_per_second']:.0f} sentences/s"
    )


def translate_docbin(
    source: Path, output: Path, translator: Translator, config: Dict, split_chars: Optional[bool],
    chunk_size: int, report_path: Path,
) -> Dict:
    """Translate in chunks (reusing finished ones), then write the report and the DocBin."""
    docs = read_sources(source)
    job = ChunkedJob(output, job_fingerprint(source, config, split_chars, chunk_size), done_suffix=".json")
    job.start()
    chunk_stats = []
    with tqdm(total=len(docs), unit="sent", desc="translate") as progress:
        for index, start in enumerate(range(0, len(docs), chunk_size)):
            chunk = docs[start : start + chunk_size]
            if not job.is_done(index):
                _translate_chunk(translator, chunk, split_chars, job.path(index), job.path(index, ".json"))
            chunk_stats.append(json.loads(job.path(index, ".json").read_text(encoding="utf8")))
            progress.update(len(chunk))
    summary = {"source": str(source), "output": str(output), "config": config, **_summarise(chunk_stats)}
    write_atomic(report_path, json.dumps(summary, indent=2, ensure_ascii=False))
    job.merge(len(chunk_stats), Vocab())
    return summary


def read_sources(source: Path) -> List[Doc]:
    """The source Docs; each must carry its pair key, which its translation inherits."""
    docs = read_docbin(source, Vocab())
    if not docs:
        raise ValueError(f"{source} holds no Docs")
    missing = sum(PAIR_KEY not in doc.user_data for doc in docs)
    if missing:
        raise ValueError(
            f"{missing} of {len(docs)} Docs in {source} carry no doc.user_data[{PAIR_KEY!r}]: "
            "make the DocBin with `python -m spacy_concner convert`"
        )
    return docs


def job_fingerprint(source: Path, config: Dict, split_chars: Optional[bool], chunk_size: int) -> Dict:
    """What the chunks depend on: the source file, the translator's settings and the options."""
    stat = source.stat()
    return {"source": str(source.resolve()), "size": stat.st_size, "mtime": stat.st_mtime, "config": config, "split_chars": split_chars, "chunk_size": chunk_size}


def _translate_chunk(translator: Translator, docs: List[Doc], split_chars: Optional[bool], doc_path: Path, stats_path: Path) -> None:
    """Translate one chunk; its DocBin first, then its statistics, which mark it finished."""
    started = time.perf_counter()
    results = list(translate_docs(translator, docs, split_chars))
    seconds = time.perf_counter() - started
    write_docbin([r.doc for r in results if r.doc is not None], doc_path)
    write_atomic(stats_path, json.dumps(_chunk_stats(results, seconds)))


def _chunk_stats(results: List[Translation], seconds: float) -> Dict:
    notes = Counter()
    for result in results:
        notes.update(result.notes)
    kept = [r for r in results if r.doc is not None]
    return {
        "sentences_in": len(results),
        "sentences_out": len(kept),
        "entities_in": Counter(e.label_ for r in results for e in r.source.ents),
        "entities_out": Counter(e.label_ for r in kept for e in r.doc.ents),
        "invalid_entities": sum(not _valid(e) for r in kept for e in r.doc.ents),
        "dropped": [{"pair": r.source.user_data.get(PAIR_KEY), "reason": r.error} for r in results if r.doc is None],
        "notes": notes,
        "seconds": seconds,
    }


def _valid(ent) -> bool:
    """An entity span with text that neither starts nor ends with whitespace."""
    return len(ent) > 0 and ent.text == ent.text.strip() and bool(ent.text)


def _summarise(chunks: List[Dict]) -> Dict:
    total = {key: Counter() for key in ("entities_in", "entities_out", "notes")}
    for chunk in chunks:
        for key, counter in total.items():
            counter.update(chunk[key])
    dropped = [d for chunk in chunks for d in chunk["dropped"]]
    sentences_in = sum(c["sentences_in"] for c in chunks)
    seconds = sum(c["seconds"] for c in chunks)
    labels = sorted(total["entities_in"])
    return {
        "sentences_in": sentences_in,
        "sentences_out": sum(c["sentences_out"] for c in chunks),
        "entities_in": _with_total(total["entities_in"]),
        "entities_out": _with_total(total["entities_out"]),
        # output entities per source entity, over all sentences (dropped ones count as lost)
        "entity_survival": {
            label: _ratio(total["entities_out"][label], total["entities_in"][label]) for label in labels
        } | {"total": _ratio(sum(total["entities_out"].values()), sum(total["entities_in"].values()))},
        "invalid_entities": sum(c["invalid_entities"] for c in chunks),
        "sentences_dropped": len(dropped),
        "dropped_reasons": dict(Counter(d["reason"] for d in dropped)),
        "dropped": dropped,
        "notes": dict(total["notes"]),
        "note_shares": _note_shares(total["notes"]),
        "seconds": round(seconds, 3),
        "sentences_per_second": round(sentences_in / seconds, 1) if seconds else None,
    }


def _note_shares(notes: Counter) -> Dict[str, Optional[float]]:
    """Each note `<name>_<what>` as a share of the note `<name>` when there is one:
    `tokens_translated` per `tokens`, `entity_tokens_switched` per `entity_tokens`."""
    shares = {}
    for key, count in sorted(notes.items()):
        whole = key.rsplit("_", 1)[0]
        if whole != key and whole in notes:
            shares[key] = _ratio(count, notes[whole])
    return shares


def _with_total(counts: Counter) -> Dict[str, int]:
    return {**dict(sorted(counts.items())), "total": sum(counts.values())}


def _ratio(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 4) if whole else None
