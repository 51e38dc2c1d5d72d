"""Entity-level evaluation: seqeval micro P/R/F1 (IOB2, default mode) per test language.

`python -m spacy_concner evaluate MODEL es=test-es.spacy nl=test-nl.spacy` predicts on Docs
rebuilt from the gold words (so tokens match the gold ones), writes one JSON record per
language and a Markdown table; `python -m spacy_concner plot` draws the F1 bar chart of
one or more such JSON files (or benchmarks/results/accuracy.json).
"""
import json
import re
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import typer
from seqeval.metrics import classification_report
from seqeval.metrics.sequence_labeling import get_entities
from spacy.language import Language
from spacy.tokens import Doc
from tqdm import tqdm
from wasabi import msg

from .checksums import DamagedFileError
from .decoding import DECODINGS, pipeline_decoding
from .corpora import words_only
from .files import DocBinError, atomic_path, read_docbin, write_atomic
from .loading import PipelineError, load_pipeline
from .tables import markdown_table

TRAINING_OUTPUTS = ("model-best", "model-last")
TEST_ARG = re.compile(r"^(?P<lang>[A-Za-z][\w-]*)=(?P<path>.+)$")


class EvaluateError(ValueError):
    """A test file or result file that cannot be used: the message says what to do."""


def parse_test_arg(arg: str) -> Tuple[str, Path]:
    """Split a `LANG=PATH` argument, e.g. `es=corpus/es/test.spacy`."""
    match = TEST_ARG.match(arg)
    if match is None:
        raise EvaluateError(
            f"{arg!r}: write each test file as LANG=PATH, e.g. es=corpus/es/test.spacy"
        )
    path = Path(match["path"])
    if not path.is_file():
        raise EvaluateError(f"{arg!r}: no such file {path}")
    return match["lang"], path


def read_gold_docs(path: Path, nlp: Language) -> List[Doc]:
    """The Docs of a DocBin file, which must hold gold entities."""
    docs = read_docbin(path, nlp.vocab)
    if not any(doc.ents for doc in docs):
        raise EvaluateError(
            f"{path} has no gold entities (an unlabelled or empty file?); "
            "evaluate needs a test split converted with its labels"
        )
    return docs


def iob2_tags(doc: Doc) -> List[str]:
    """The IOB2 tag of each token; tokens without annotation count as O."""
    return [
        f"{token.ent_iob_}-{token.ent_type_}" if token.ent_iob_ in ("B", "I") else "O"
        for token in doc
    ]


def score_tags(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> Dict:
    """seqeval entity-level micro P/R/F1 (0-100) overall and per entity type.

    Default mode, as conlleval: an I- tag after O (or after another type) starts an entity.
    """
    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    micro = report.pop("micro avg")
    per_type = {
        label: _percentages(scores)
        for label, scores in sorted(report.items())
        if not label.endswith(" avg")
    }
    return {**_percentages(micro), "per_type": per_type}


def _percentages(scores: Dict) -> Dict:
    return {
        "precision": 100 * float(scores["precision"]),
        "recall": 100 * float(scores["recall"]),
        "f1": 100 * float(scores["f1-score"]),
        "n_gold_entities": int(scores["support"]),
    }


def pipe_by_length(nlp: Language, docs: List[Doc], batch_size: int, desc: str) -> List[Doc]:
    """nlp.pipe over the Docs shortest first, so that a batch pads its sentences to a
    similar length (about half the encoder's work on CoNLL and WikiANN test sets); the
    Docs come back in their original order, with a progress bar."""
    order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
    processed = nlp.pipe((docs[i] for i in order), batch_size=batch_size)
    progress = tqdm(processed, total=len(docs), desc=desc, unit="sent", mininterval=5, leave=False)
    result: List[Optional[Doc]] = [None] * len(docs)
    for i, doc in zip(order, progress):
        result[i] = doc
    return result


def evaluate_docs(
    nlp: Language, gold_docs: List[Doc], batch_size: int, desc: str, by_length: bool = True
) -> Dict:
    """Predict on copies of the gold words and score them against the gold entities;
    shortest first (pipe_by_length), or with by_length = False in the given order (as an
    application passes its texts: benchmarks/speed.py)."""
    inputs = [words_only(doc, nlp.vocab) for doc in gold_docs]
    start = time.perf_counter()
    if by_length:
        pred_docs = pipe_by_length(nlp, inputs, batch_size, desc)
    else:
        pred_docs = list(nlp.pipe(inputs, batch_size=batch_size))
    seconds = time.perf_counter() - start
    gold = [iob2_tags(doc) for doc in gold_docs]
    pred = [iob2_tags(doc) for doc in pred_docs]
    _warn_unknown_labels(gold, pred, desc)
    _warn_unpredictable_labels(nlp, gold, desc)
    n_words = sum(len(doc) for doc in gold_docs)
    return {
        **score_tags(gold, pred),
        "n_pred_entities": len(get_entities(pred)),
        "n_sents": sum(_n_sents(doc) for doc in gold_docs),
        "n_words": n_words,
        "words_per_second": n_words / max(seconds, 1e-9),
    }


def _n_sents(doc: Doc) -> int:
    return len(list(doc.sents)) if doc.has_annotation("SENT_START") else 1


def _warn_unknown_labels(gold: List[List[str]], pred: List[List[str]], desc: str) -> None:
    unknown = {t for t, _, _ in get_entities(pred)} - {t for t, _, _ in get_entities(gold)}
    if unknown:
        msg.warn(
            f"{desc}: the model predicts {sorted(unknown)}, absent from the gold data; "
            "these entities count as false positives"
        )


def _warn_unpredictable_labels(nlp: Language, gold: List[List[str]], desc: str) -> None:
    known = entity_types(nlp)
    gold_types = Counter(t for t, _, _ in get_entities(gold))
    missing = sorted(set(gold_types) - known) if known is not None else []
    if missing:
        n_missing = sum(gold_types[t] for t in missing)
        msg.warn(
            f"{desc}: the model cannot predict {', '.join(missing)} ({n_missing} of the "
            f"{sum(gold_types.values())} gold entities), which count as missed; it knows "
            f"{', '.join(sorted(known))}"
        )


def entity_types(nlp: Language) -> Optional[Set[str]]:
    """The entity types the pipeline's entity-setting components know (labels); None
    when none of them says."""
    labelled = [
        pipe.labels for name, pipe in nlp.pipeline
        if "doc.ents" in nlp.get_pipe_meta(name).assigns and hasattr(pipe, "labels")
    ]
    return {label for labels in labelled for label in labels} if labelled else None


def evaluate_file(
    nlp: Language, lang: str, path: Path, system: str, batch_size: int = 64
) -> Dict:
    """The record of one test file: system, lang, test and the scores."""
    desc = f"{system} {lang}"
    scores = evaluate_docs(nlp, read_gold_docs(path, nlp), batch_size, desc)
    msg.info(
        f"{desc}: F1 {scores['f1']:.2f} (P {scores['precision']:.2f}, "
        f"R {scores['recall']:.2f}) on {scores['n_sents']} sentences, "
        f"{scores['n_gold_entities']} gold entities, {scores['words_per_second']:.0f} words/s"
    )
    return {"system": system, "lang": lang, "test": str(path), **scores}


def results_table(records: List[Dict]) -> str:
    """P/R/F1 overall and F1 per entity type, one row per record, in Markdown."""
    types = sorted({label for record in records for label in record["per_type"]})
    header = ["system", "lang", "P", "R", "F1", *(f"F1 {t}" for t in types),
              "sents", "gold entities", "words/s"]
    rows = [
        [
            record["system"], record["lang"],
            *(f"{record[key]:.2f}" for key in ("precision", "recall", "f1")),
            *(f"{record['per_type'][t]['f1']:.2f}" if t in record["per_type"] else "–"
              for t in types),
            record["n_sents"], record["n_gold_entities"], f"{record['words_per_second']:.0f}",
        ]
        for record in records
    ]
    return markdown_table(header, rows)


def default_system(model: str) -> str:
    """MODEL's folder or package name; for spaCy's model-best and model-last, which every
    training run writes, the name of their training folder."""
    path = Path(model).absolute()
    return path.parent.name if path.name in TRAINING_OUTPUTS else path.name


def result_paths(output_dir: Path, system: str) -> Tuple[Path, Path]:
    """SYSTEM.json (a list of records) and SYSTEM.md in output_dir."""
    stem = re.sub(r"[^\w.-]", "_", system)
    return output_dir / f"{stem}.json", output_dir / f"{stem}.md"


def write_results(records: List[Dict], output_dir: Path, system: str) -> None:
    json_path, md_path = result_paths(output_dir, system)
    write_atomic(json_path, json.dumps(records, indent=2, ensure_ascii=False) + "\n")
    write_atomic(md_path, results_table(records))


def reusable_records(json_path: Path, model: str, decoding: Optional[str] = None) -> Dict[Tuple[str, str], Dict]:
    """Records of an earlier run, by (lang, test), written after the last change to the
    model directory and to their test file, with the same decoding; none for an
    installed package (no mtimes)."""
    if not json_path.exists() or not Path(model).is_dir():
        return {}
    written = json_path.stat().st_mtime
    if any(p.stat().st_mtime > written for p in Path(model).rglob("*")):
        return {}
    return {
        (r["lang"], r["test"]): r
        for r in load_records([json_path])
        if r.get("model") == model
        and r.get("decoding") == decoding
        and Path(r["test"]).is_file()
        and Path(r["test"]).stat().st_mtime < written
    }


def load_records(paths: Iterable[Path]) -> List[Dict]:
    """The records of JSON result files: lists of dicts with system, lang and f1."""
    records = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf8"))
        except ValueError as err:
            raise ValueError(f"{path} is not valid JSON ({err})") from err
        if not data or not isinstance(data, list) or not all(
            isinstance(r, dict) and {"system", "lang", "f1"} <= r.keys() for r in data
        ):
            raise ValueError(
                f"{path}: expected a non-empty JSON list of records with system, lang "
                "and f1 (as written by `evaluate` or benchmarks/accuracy)"
            )
        records.extend(data)
    return records


def bar_layout(records: List[Dict]) -> Tuple[List[str], Dict[Tuple[str, str], float], float]:
    """The systems in the order of their first record, the x of each (system, lang) bar
    and the bar width: one group per language at x = 0, 1, ..., holding only the systems
    with records for that language, side by side, centred."""
    present = {(r["system"], r["lang"]) for r in records}
    systems = list(dict.fromkeys(r["system"] for r in records))
    langs = list(dict.fromkeys(r["lang"] for r in records))
    groups = [[s for s in systems if (s, lang) in present] for lang in langs]
    width = 0.8 / max(len(group) for group in groups)
    positions = {
        (system, lang): j + width * (k - (len(group) - 1) / 2)
        for j, (lang, group) in enumerate(zip(langs, groups))
        for k, system in enumerate(group)
    }
    return systems, positions, width


def plot_f1(records: List[Dict], path: Path) -> Path:
    """Grouped bar chart of F1 per language (groups) and system (bars), as a PNG.

    Records sharing system and language (several seeds) give their mean, with the
    standard deviation as an error bar.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems, positions, width = bar_layout(records)
    langs = list(dict.fromkeys(r["lang"] for r in records))
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 2 + len(positions) * 0.45)), 4.5))
    for system in systems:
        means, stds, xs = [], [], []
        for lang in langs:
            f1s = [r["f1"] for r in records if r["system"] == system and r["lang"] == lang]
            if f1s:
                xs.append(positions[system, lang])
                means.append(statistics.mean(f1s))
                stds.append(statistics.stdev(f1s) if len(f1s) > 1 else 0.0)
        bars = ax.bar(xs, means, width, yerr=stds if any(stds) else None, capsize=3, label=system)
        # inside the bars, where the error bars do not cover them
        ax.bar_label(bars, fmt="%.1f", label_type="center", rotation=90, fontsize=8, color="white")
    ax.set_xticks(range(len(langs)), langs)
    ax.set_ylim(0, 105)
    ax.set_ylabel("F1 (seqeval entity-level micro)")
    ax.set_title("NER F1 per language and system (mean ± std over runs)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def evaluate_cli(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    tests: List[str] = typer.Argument(
        ..., help="LANG=PATH of each DocBin test file with gold entities, "
        "e.g. es=corpus/es/test.spacy"
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Folder for SYSTEM.json and SYSTEM.md"
    ),
    system: Optional[str] = typer.Option(
        None, "--system", help="Name of the system in the results [default: MODEL's folder or "
        "package name; for model-best/model-last, their training folder's, e.g. concner-n1000-s1]"
    ),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, or -1 for CPU"),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Docs per nlp.pipe batch"),
    resume: bool = typer.Option(
        True, help="Keep the records of --output that are newer than MODEL and their test file"
    ),
    decoding: Optional[str] = typer.Option(
        None, "--decoding", help=f"Tag decoding of the concner components ({', '.join(DECODINGS)}) "
        "[default: the model's own]"
    ),
) -> None:
    """Score MODEL on test files: seqeval entity-level P/R/F1 overall and per type."""
    system = system or default_system(model)
    try:
        records = evaluate_model(model, tests, output, system, gpu_id, batch_size, resume, decoding)
    except (EvaluateError, DocBinError, PipelineError, DamagedFileError) as error:
        msg.fail(str(error), exits=1)
    print(results_table(records))
    if output is not None:
        msg.good("Wrote {} and {}".format(*result_paths(output, system)))


def evaluate_model(
    model: str, tests: List[str], output: Optional[Path], system: str,
    gpu_id: int = -1, batch_size: int = 64, resume: bool = True, decoding: Optional[str] = None,
) -> List[Dict]:
    """The records of MODEL on the LANG=PATH test files, written to output/SYSTEM.json
    and .md after each file; records of an earlier run are kept (resume) while MODEL,
    their test file and the decoding are unchanged. decoding: that of the model's
    concner components (spacy_concner.decoding), or None for the model's own."""
    parsed = [parse_test_arg(arg) for arg in tests]
    nlp = load_pipeline(model, gpu_id)
    try:
        decoding = pipeline_decoding(nlp, decoding)
    except ValueError as error:
        raise EvaluateError(f"{model}: {error}") from None
    kept = reusable_records(result_paths(output, system)[0], model, decoding) if output and resume else {}
    records = []
    for lang, path in parsed:
        record = kept.get((lang, str(path)))
        if record is None:
            record = {**evaluate_file(nlp, lang, path, system, batch_size), "model": model, "decoding": decoding}
        else:
            msg.info(f"{system} {lang}: F1 {record['f1']:.2f}, kept from {output}")
        records.append(record)
        if output is not None:  # after each file, so that a long run keeps what it did
            write_results(records, output, system)
    return records


def plot_cli(
    results: List[Path] = typer.Argument(
        ..., exists=True, dir_okay=False, help="JSON result files of `evaluate` "
        "or benchmarks/accuracy"
    ),
    output: Path = typer.Option(Path("f1.png"), "--output", "-o", help="PNG file to write"),
) -> None:
    """Bar chart of F1 per language and system from evaluation results."""
    try:
        records = load_records(results)
    except ValueError as error:
        msg.fail(str(error), exits=1)
    msg.good(f"Wrote {plot_f1(records, output)}")
