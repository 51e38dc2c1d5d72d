"""Speed of the students on one CPU thread: words per second of `nlp.pipe` on raw text.

    python benchmarks/student_speed.py cnn=training/de/student_sm/model-best \
        transformer=training/de/concner/model-best --text corpus/de/test.spacy --n-sents 500

Each MODEL is a trained pipeline folder or an installed package, named SYSTEM=MODEL. The
text is that of the Docs of a DocBin (tokenised again by each pipeline, as users run
it); the words counted are the tokens of the output Docs. The first --warm-up sentences
are run once and not timed; the timed pass is repeated --repeats times and the best
(least disturbed on a shared machine) is kept, with its CPU time (words per CPU second:
the speed of the thread while it runs) and the 1-minute load average.
Target of the CNN student (issue 5): >= 10,000 words/s. Writes
--results/student_speed.json (a list of records) and student_speed.md.
"""
import os

# one thread, set before numpy and torch load their thread pools
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[variable] = "1"

import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

import typer

from spacy_concner.files import write_atomic
from spacy_concner.tables import markdown_table

ROOT = Path(__file__).resolve().parent.parent
TARGET_WORDS_PER_SECOND = 10_000


def read_texts(path: Path, n_sents: int) -> List[str]:
    import spacy
    from spacy.tokens import DocBin

    docs = DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab)
    texts = [doc.text.strip() for doc in docs if len(doc)]
    return texts[:n_sents]


def time_pipe(nlp, texts: List[str], batch_size: int) -> Dict:
    """Wall time, and the process's CPU time: on a machine shared with other jobs the
    thread does not always run, and words per CPU second show the speed it has when it does."""
    start, start_cpu = time.perf_counter(), time.process_time()
    n_words = sum(len(doc) for doc in nlp.pipe(texts, batch_size=batch_size))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    return {
        "n_words": n_words,
        "seconds": round(seconds, 3),
        "words_per_second": round(n_words / seconds, 1),
        "cpu_seconds": round(cpu_seconds, 3),
        "words_per_cpu_second": round(n_words / cpu_seconds, 1),
    }


def measure(
    system: str, model: str, texts: List[str], warm_up: int, repeats: int, batch_size: Optional[int]
) -> Dict:
    import spacy
    import torch

    torch.set_num_threads(1)
    nlp = spacy.load(model)
    batch_size = batch_size or nlp.batch_size
    list(nlp.pipe(texts[:warm_up], batch_size=batch_size))
    runs = [time_pipe(nlp, texts, batch_size) for _ in range(repeats)]
    best = max(runs, key=lambda run: run["words_per_second"])
    return {
        "system": system,
        "model": model,
        "pipeline": nlp.pipe_names,
        "n_sents": len(texts),
        **best,
        "runs_words_per_second": [run["words_per_second"] for run in runs],
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def markdown(records: List[Dict], text: Path, note: str) -> str:
    lines = [
        "# Student speed (one CPU thread)",
        "",
        *([note, ""] if note else []),
        f"`nlp.pipe` on raw text of {text} ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores shared with other jobs; best of the repeats). Target for the "
        f"CNN student: >= {TARGET_WORDS_PER_SECOND:,} words/s.",
        "",
    ]
    header = ["system", "model", "pipeline", "batch", "sentences", "words", "words/s",
              "words/CPU s", "runs (words/s)", "load avg"]
    rows = [
        [
            r["system"], r["model"], "+".join(r["pipeline"]), r["batch_size"], r["n_sents"],
            r["n_words"], f"{r['words_per_second']:,.0f}", f"{r['words_per_cpu_second']:,.0f}",
            ", ".join(f"{w:,.0f}" for w in r["runs_words_per_second"]), r["load_avg_1min"],
        ]
        for r in records
    ]
    return "\n".join(lines) + "\n" + markdown_table(header, rows, align="lllrrrrrlr")


def main(
    models: List[str] = typer.Argument(..., help="SYSTEM=MODEL, e.g. cnn=training/de/student_sm/model-best"),
    text: Path = typer.Option(..., help="DocBin whose text is run (e.g. a target test set)"),
    n_sents: int = typer.Option(500, min=1, help="Sentences timed"),
    warm_up: int = typer.Option(20, min=0, help="Sentences run once before timing"),
    repeats: int = typer.Option(3, min=1, help="Timed passes; the best is kept"),
    batch_size: Optional[int] = typer.Option(
        None, min=1, help="nlp.pipe batch size [default: each pipeline's nlp.batch_size]"
    ),
    results: Path = typer.Option(ROOT / "benchmarks" / "results", help="Output folder"),
    note: str = typer.Option("", help="What the models are, for the Markdown"),
) -> None:
    """Words per second of each student on one CPU thread."""
    pairs = [model.split("=", 1) for model in models]
    if any(len(pair) != 2 for pair in pairs):
        raise typer.BadParameter("write each model as SYSTEM=MODEL, e.g. cnn=training/de/student_sm/model-best")
    texts = read_texts(text, n_sents)
    records = []
    for system, model in pairs:
        record = measure(system, model, texts, warm_up, repeats, batch_size)
        record["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        typer.echo(
            f"{system}: {record['words_per_second']:,.0f} words/s, "
            f"{record['words_per_cpu_second']:,.0f} words/CPU s ({record['n_words']} words)"
        )
        records.append(record)
    results.mkdir(parents=True, exist_ok=True)
    write_atomic(results / "student_speed.json", json.dumps(records, indent=2) + "\n")
    write_atomic(results / "student_speed.md", markdown(records, text, note))


if __name__ == "__main__":
    typer.run(main)
