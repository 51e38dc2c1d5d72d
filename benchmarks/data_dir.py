"""The corpus folder the benchmarks read: $SPACY_CONCNER_DATA, by default assets/data
(where `spacy project assets` puts the corpora), with plain or gzip-compressed files."""
import os
from pathlib import Path

DATA_DIR = Path(os.environ.get("SPACY_CONCNER_DATA", Path(__file__).resolve().parents[1] / "assets" / "data"))


def corpus_file(data_dir: Path, name: str) -> Path:
    """data_dir/name, or its .gz copy when only that exists (e.g. conll2003/en/eng.train)."""
    path = Path(data_dir) / name
    gzipped = path.with_name(path.name + ".gz")
    return gzipped if not path.exists() and gzipped.exists() else path
