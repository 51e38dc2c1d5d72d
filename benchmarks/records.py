"""A benchmark's results file: a JSON list of records, one per setting that its key fields name.

The benchmarks that keep one record per setting (accuracy, decoding, eat_breakdown, selection,
speed, step_time, wikiann_matrix) read their file, put a new record in the place of the one
with the same key, and write the JSON with its Markdown table, both atomically: an interrupted
benchmark leaves the last complete pair, and a rerun resumes from it.
"""
import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from spacy_concner.files import write_atomic


class RecordsError(ValueError):
    """A results file that is not a list of records with the benchmark's key fields."""


def read_records(path: Path, key: Sequence[str]) -> List[Dict]:
    """The records of `path`, or none if it does not exist yet."""
    if not path.exists():
        return []
    try:
        records = json.loads(path.read_text(encoding="utf8"))
    except (OSError, ValueError) as error:
        raise RecordsError(f"{path}: not readable JSON ({error}): move it away to start afresh") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) and set(key) <= r.keys() for r in records):
        raise RecordsError(f"{path}: not a list of records with {', '.join(key)}: move it away to start afresh")
    return records


def key_of(record: Dict, key: Sequence[str]) -> Tuple:
    return tuple(record[field] for field in key)


def replaced(records: List[Dict], record: Dict, key: Sequence[str]) -> List[Dict]:
    """The records with `record` in the place of the one with its key (or last), its order kept."""
    at = next((i for i, r in enumerate(records) if key_of(r, key) == key_of(record, key)), len(records))
    kept = [r for r in records if key_of(r, key) != key_of(record, key)]
    return kept[:at] + [record] + kept[at:]


def write_records(path: Path, records: List[Dict], markdown: str) -> None:
    """`path` (JSON) and the same name with .md (`markdown`), each replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    write_atomic(path.with_suffix(".md"), markdown)
