"""What a training run spends reading its corpora: spacy.Corpus.v1 against
spacy_concner.ReadOnceCorpus.v1 on the same DocBins.

    python benchmarks/corpus_reads.py corpus/conll2003-en/train-n1000-s1.spacy corpus/es/trans-n1000-s1.spacy \
        corpus/es/cs-n1000-s1.spacy corpus/es/distill-concner_teacher-n1000-s1.spacy corpus/conll2003-en/dev.spacy

(paths in a workflow's project folder). spaCy's trainer asks the training corpus for its
Examples every epoch and the dev corpus at every evaluation; spacy.Corpus.v1 reads the
DocBin again each time, ReadOnceCorpus.v1 the first time only. Each reader reads each file
--reads times into one blank pipeline's vocab, the two readers taking turns; a file's
record keeps each reader's first read and the mean of the others, with the machine's load
average, since other work on the machine slows both.

Writes corpus_reads.json (one record per file; a rerun replaces it) and
corpus_reads.md to --results.
"""
import os
import shlex
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Tuple

import spacy
import typer
from spacy.util import registry

import spacy_concner  # noqa: F401  registers the read-once reader
from spacy_concner.tables import markdown_table
from records import read_records, replaced, write_records

READERS = {"corpus": "spacy.Corpus.v1", "read_once": "spacy_concner.ReadOnceCorpus.v1"}
RECORD_KEY = ("file",)


def timed_reads(path: Path, reads: int) -> Tuple[int, Dict[str, List[float]]]:
    """The sentences of `path` and the seconds of each read by each reader, in turns."""
    nlp = spacy.blank("xx")
    options = {"gold_preproc": False, "max_length": 0, "limit": 0}  # spacy.Corpus.v1 has no defaults
    corpora = {name: registry.readers.get(reader)(path=path, **options) for name, reader in READERS.items()}
    seconds: Dict[str, List[float]] = {name: [] for name in READERS}
    for _ in range(reads):
        for name, corpus in corpora.items():
            started = time.perf_counter()
            examples = list(corpus(nlp))
            seconds[name].append(time.perf_counter() - started)
    return len(examples), seconds


def file_record(path: Path, reads: int, command: str) -> Dict:
    sentences, seconds = timed_reads(path, reads)
    record = {"file": path.as_posix(), "sentences": sentences, "reads": reads}
    for name in READERS:
        record[f"{name}_first_s"] = round(seconds[name][0], 4)
        record[f"{name}_later_s"] = round(statistics.mean(seconds[name][1:]), 4)
    record["saved_per_later_read_s"] = round(record["corpus_later_s"] - record["read_once_later_s"], 4)
    return {**record, "load_average": round(os.getloadavg()[0], 2), "command": command,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def markdown(records: List[Dict]) -> str:
    header = ["file", "sentences", "spacy.Corpus.v1: first read (s)", "later read (s, mean)",
              "ReadOnceCorpus.v1: first read (s)", "later read (s, mean)", "saved per later read (s)",
              "load average"]
    rows = [[r["file"], r["sentences"], r["corpus_first_s"], r["corpus_later_s"], r["read_once_first_s"],
             r["read_once_later_s"], r["saved_per_later_read_s"], r["load_average"]] for r in records]
    return "\n".join([
        "# Corpus reads: spacy.Corpus.v1 against spacy_concner.ReadOnceCorpus.v1",
        "",
        "Seconds to read each DocBin into a list of Examples (a blank pipeline's vocab), one process, "
        "the two readers taking turns. A training run reads its training files once per epoch "
        "(PairedCorpus each view's file) and its dev set at every evaluation: each read after the first "
        "is one that spacy.Corpus.v1 makes again and ReadOnceCorpus.v1 does not. The load average "
        "(1 min) is the machine's after the file's reads; other work on the machine slows both "
        "readers. Written by benchmarks/corpus_reads.py.",
        "",
        "Commands (in the project folder whose workflow made the files):",
        "",
        *(f"    {command}" for command in dict.fromkeys(r["command"] for r in records)),
        "",
        markdown_table(header, rows, "lrrrrrrr"),
    ])


def main(
    paths: List[Path] = typer.Argument(..., help="DocBin files (.spacy)", exists=True, dir_okay=False),
    reads: int = typer.Option(5, min=2, help="Reads of each file by each reader"),
    results: Path = typer.Option(Path(__file__).resolve().parent / "results", help="Folder of corpus_reads.{json,md}"),
) -> None:
    """Time spacy.Corpus.v1 and ReadOnceCorpus.v1 reading the same DocBins."""
    json_path = results / "corpus_reads.json"
    records = read_records(json_path, RECORD_KEY)
    command = "python benchmarks/corpus_reads.py " + shlex.join([*(p.as_posix() for p in paths), "--reads", str(reads)])
    for path in paths:
        record = file_record(path, reads, command)
        records = replaced(records, record, RECORD_KEY)
        write_records(json_path, records, markdown(records))
        typer.echo(f"{path} ({record['sentences']} sentences): spacy.Corpus.v1 {record['corpus_later_s']:.3f} s "
                   f"a read, ReadOnceCorpus.v1 {record['read_once_first_s']:.3f} s the first, "
                   f"{record['read_once_later_s']:.4f} s each later one")


if __name__ == "__main__":
    typer.run(main)
