"""The WikiANN zero-shot matrix: trained pipelines scored on the test set of every WikiANN
language of the data folder, languages grouped by script.

    python benchmarks/wikiann_matrix.py --models en=training/wikiann-en/en-n1000-s1/model-best \
        --sentences 1000 --compare-join-cjk --describe "en=En: e5-small fine-tuned on ..."

Each model (NAME=MODEL: a pipeline folder or an installed package) predicts on the first
--sentences sentences of DATA_DIR/wikiann/LANG/test-LANG.tsv (or .tsv.gz) of every
language found there (or of --langs), on Docs of the gold words, shortest first, and is
scored as `evaluate` scores (spacy_concner.evaluate: seqeval entity-level micro P/R/F1,
default mode). The data folder is --data-dir, by default $SPACY_CONCNER_DATA or
assets/data (benchmarks/data_dir.py).

The script of a language is the majority Unicode script of the letters of the sentences
evaluated, read from the characters' Unicode names (CJK ideographs count as Han,
Hiragana and Katakana as Kana). With --compare-join-cjk, each pipeline whose encoder is
spacy_concner.TransformerModel.v2 is also scored, on the languages written in Han or Kana,
loaded with `join_cjk = false` (the encoder then reads a space between characters:
docs/encoder.md), as NAME + " (join_cjk off)".

Writes to --results (default benchmarks/results):
  wikiann_matrix.json  one record per model and language, written after each language;
                       a rerun keeps the records of the same --sentences and scores only
                       the rest (remove a model's records to score it again)
  wikiann_matrix.md    F1 per language (rows, grouped by script) and model (columns), the
                       mean per script and overall, and the command; with the JSON
  wikiann_matrix.png   F1 per language, grouped and coloured by script
Words per second are those of the run (torch --threads threads), on whatever else the
machine was doing.
"""
import statistics
import time
import unicodedata
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import typer

from data_dir import DATA_DIR, corpus_file

ROOT = Path(__file__).resolve().parent.parent
RESULTS_NAME = "wikiann_matrix"
RECORD_KEY = ("model", "lang")
LABELLED_MODELS = 4  # bars carry their F1 up to this many models
JOIN_CJK_OFF = " (join_cjk off)"
CJK_SCRIPTS = ("Han", "Kana")
TRANSFORMER_V2 = "spacy_concner.TransformerModel.v2"
UNKNOWN_SCRIPT = "Unknown"
# the first word of a letter's Unicode name is its script, but for these
_SCRIPT_NAMES = {"CJK": "Han", "IDEOGRAPHIC": "Han", "HIRAGANA": "Kana", "KATAKANA": "Kana",
                 "KATAKANA-HIRAGANA": "Kana"}
_WIDTH_PREFIXES = ("FULLWIDTH", "HALFWIDTH")  # FULLWIDTH LATIN CAPITAL LETTER A is Latin
_NOT_SCRIPTS = ("MODIFIER", "MASCULINE", "FEMININE")  # ª, º, modifier letters: no script


class MatrixError(ValueError):
    """Options or data that cannot be used: the message says what to do."""


def letter_script(char: str) -> Optional[str]:
    """The script of a letter from its Unicode name (LATIN SMALL LETTER A: Latin, CJK
    UNIFIED IDEOGRAPH-5317: Han, KATAKANA LETTER A: Kana); None for other characters."""
    if not unicodedata.category(char).startswith("L"):
        return None
    words = unicodedata.name(char, "").split()
    if words and words[0] in _WIDTH_PREFIXES:
        words = words[1:]
    if not words or words[0] in _NOT_SCRIPTS:
        return None
    return _SCRIPT_NAMES.get(words[0], words[0].title())


def detect_script(words: Iterable[str]) -> str:
    """The script of most letters of the words (Unknown if they have none)."""
    counts = Counter(script for word in words for script in map(letter_script, word) if script)
    return counts.most_common(1)[0][0] if counts else UNKNOWN_SCRIPT


def find_tests(data_dir: Path, langs: Optional[Sequence[str]] = None) -> Dict[str, Path]:
    """The test file of each WikiANN language of data_dir (wikiann/LANG/test-LANG.tsv, or
    its .gz), by language code in alphabetical order; only `langs` if given."""
    folder = Path(data_dir) / "wikiann"
    if not folder.is_dir():
        raise MatrixError(f"{folder}: no such folder: give --data-dir, the folder with "
                          "wikiann/LANG/test-LANG.tsv (or .tsv.gz) of each language")
    found = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        path = corpus_file(data_dir, f"wikiann/{sub.name}/test-{sub.name}.tsv")
        if path.is_file():
            found[sub.name] = path
    if not found:
        raise MatrixError(f"{folder}: no LANG/test-LANG.tsv (or .tsv.gz) in any folder")
    if langs:
        missing = [lang for lang in langs if lang not in found]
        if missing:
            raise MatrixError(f"no WikiANN test file for {', '.join(missing)} in {folder} "
                              f"(languages there: {' '.join(found)})")
        found = {lang: found[lang] for lang in langs}
    return found


def parse_pairs(value: str, what: str, example: str) -> List[Tuple[str, str]]:
    """NAME=VALUE,NAME=VALUE -> [(NAME, VALUE), ...]."""
    pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
    if not pairs or any(len(pair) != 2 or not all(p.strip() for p in pair) for pair in pairs):
        raise MatrixError(f"{value!r}: write {what} as NAME=VALUE, e.g. {example}")
    names = [name.strip() for name, _ in pairs]
    if len(set(names)) < len(names):
        raise MatrixError(f"{value!r}: a name used twice")
    return [(name.strip(), item.strip()) for name, item in pairs]


def parse_description(text: str) -> Tuple[str, str]:
    """--describe NAME=TEXT (one model; the text may hold commas)."""
    name, _, description = text.partition("=")
    if not name.strip() or not description.strip():
        raise MatrixError(f"{text!r}: write --describe NAME=TEXT, e.g. --describe 'en=En: e5-small fine-tuned ...'")
    return name.strip(), description.strip()


def join_cjk_components(model: str) -> List[str]:
    """The transformer components of the pipeline whose encoder takes join_cjk
    (TransformerModel.v2), from its config, without loading it."""
    from spacy.util import load_config

    from spacy_concner.loading import pipeline_folder

    folder = pipeline_folder(model)
    if folder is None:
        return []
    components = load_config(folder / "config.cfg", interpolate=False)["components"]
    return [name for name, component in components.items()
            if component.get("model", {}).get("@architectures") == TRANSFORMER_V2]


def load_model(model: str, join_cjk: bool = True, decoding: Optional[str] = None):
    """The pipeline, with join_cjk = false set on its TransformerModel.v2 encoders if asked,
    and its components' decoding set if given."""
    import spacy

    from spacy_concner.decoding import pipeline_decoding
    from spacy_concner.loading import load_pipeline

    if join_cjk:
        nlp = load_pipeline(model)
    else:
        overrides = {f"components.{name}.model.join_cjk": False for name in join_cjk_components(model)}
        nlp = spacy.load(model, config=overrides)
    try:
        pipeline_decoding(nlp, decoding)
    except ValueError as error:  # a pipeline without a tag-decoding component, an unknown decoding
        raise MatrixError(f"{model}: {error}") from None
    return nlp


def score_language(nlp, name: str, lang: str, test: Path, data_dir: Path, sentences: int,
                   batch_size: int, description: str) -> Dict:
    """The record of a model on the first `sentences` sentences of one test file."""
    from spacy_concner.corpora import read_docs
    from spacy_concner.decoding import pipeline_decoding
    from spacy_concner.evaluate import evaluate_docs

    docs = read_docs(test, nlp.vocab, "wikiann", max_sents=sentences)
    script = detect_script(token.text for doc in docs for token in doc)
    scores = evaluate_docs(nlp, docs, batch_size, f"{name} {lang}")
    return {
        "model": name,
        "description": description,
        # how its components read entities from tag distributions (None: no such component);
        # records without the key were made before the choice existed, with greedy decoding
        "decoding": pipeline_decoding(nlp),
        "lang": lang,
        "script": script,
        "test": test.relative_to(data_dir).as_posix(),
        "sentences": len(docs),
        "sentences_asked": sentences,
        "precision": round(scores["precision"], 2),
        "recall": round(scores["recall"], 2),
        "f1": round(scores["f1"], 2),
        "f1_per_type": {t: round(s["f1"], 2) for t, s in scores["per_type"].items()},
        "n_gold_entities": scores["n_gold_entities"],
        "n_pred_entities": scores["n_pred_entities"],
        "n_words": scores["n_words"],
        "words_per_second": round(scores["words_per_second"], 1),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def run_matrix(
    models: Sequence[Tuple[str, str]],
    data_dir: Path,
    results: Path,
    sentences: int = 1000,
    langs: Optional[Sequence[str]] = None,
    compare_join_cjk: bool = False,
    descriptions: Optional[Dict[str, str]] = None,
    batch_size: int = 64,
    echo: Callable[[str], None] = print,
    decoding: Optional[str] = None,
) -> List[Dict]:
    """Score each model on each language not yet recorded for the same --sentences;
    wikiann_matrix.json and .md are written after each language. Returns all its records."""
    from records import read_records, replaced, write_records

    descriptions = descriptions or {}
    tests = find_tests(data_dir, langs)
    json_path = Path(results) / f"{RESULTS_NAME}.json"
    records = read_records(json_path, RECORD_KEY)
    done = {(r["model"], r["lang"]) for r in records if r.get("sentences_asked") == sentences}
    todo = [(name, model, lang) for name, model in models for lang in tests if (name, lang) not in done]
    kept = len(models) * len(tests) - len(todo)
    echo(f"{len(models)} model(s) x {len(tests)} language(s): {kept} recorded with --sentences "
         f"{sentences}, {len(todo)} to score" + (" (and join_cjk off on Han and Kana)" if compare_join_cjk else ""))
    scripts = {r["lang"]: r["script"] for r in records if r["lang"] in tests}
    loaded: Dict[Tuple[str, bool], object] = {}
    started, n_scored, n_words = time.perf_counter(), 0, 0

    def score(name: str, model: str, lang: str, join_cjk: bool) -> None:
        nonlocal records, n_scored, n_words
        if (model, join_cjk) not in loaded:
            echo(f"Loading {name}{'' if join_cjk else JOIN_CJK_OFF}")
            loaded[model, join_cjk] = load_model(model, join_cjk, decoding)
        record_name = name if join_cjk else name + JOIN_CJK_OFF
        description = descriptions.get(name, name)
        if not join_cjk:
            description = f"{description}; loaded with join_cjk = false"
        record = score_language(loaded[model, join_cjk], record_name, lang, tests[lang], data_dir,
                                sentences, batch_size, description)
        records = replaced(records, record, RECORD_KEY)
        write_records(json_path, records, markdown(records))
        scripts[lang] = record["script"]
        n_scored += 1
        n_words += record["n_words"]
        elapsed = time.perf_counter() - started
        echo(f"[{n_scored}] {record_name} {lang} ({record['script']}): F1 {record['f1']:.2f} "
             f"(P {record['precision']:.2f}, R {record['recall']:.2f}) on {record['sentences']} "
             f"sentences, {record['n_gold_entities']} gold entities, {record['words_per_second']:,.0f} "
             f"words/s; {n_words:,} words in {elapsed / 60:.1f} min")

    cjk_off = {name: bool(join_cjk_components(model)) for name, model in models} if compare_join_cjk else {}
    for name, present in cjk_off.items():
        if not present:
            echo(f"{name}: no {TRANSFORMER_V2} encoder, so no join_cjk comparison")
    for name, model in models:
        for lang in tests:
            if (name, lang) not in done:
                score(name, model, lang, join_cjk=True)
            off_done = (name + JOIN_CJK_OFF, lang) in done
            if cjk_off.get(name) and scripts.get(lang) in CJK_SCRIPTS and not off_done:
                score(name, model, lang, join_cjk=False)
    echo(f"Scored {n_scored} model-language pair(s) in {(time.perf_counter() - started) / 60:.1f} min")
    return records


def model_order(records: List[Dict]) -> List[str]:
    """The models in the order of their first record, each followed by its join_cjk-off run."""
    names = list(dict.fromkeys(r["model"] for r in records))
    base = [n for n in names if not n.endswith(JOIN_CJK_OFF) or n[: -len(JOIN_CJK_OFF)] not in names]
    return [m for n in base for m in (n, n + JOIN_CJK_OFF) if m in names]


def script_groups(records: List[Dict]) -> List[Tuple[str, List[str]]]:
    """(script, its languages in alphabetical order), the scripts with most languages first."""
    scripts = {r["lang"]: r["script"] for r in records}
    by_script: Dict[str, List[str]] = {}
    for lang in sorted(scripts):
        by_script.setdefault(scripts[lang], []).append(lang)
    return sorted(by_script.items(), key=lambda item: (-len(item[1]), item[0]))


def _mean(values: List[float]) -> str:
    return f"{statistics.mean(values):.1f}" if values else "–"


def markdown(records: List[Dict]) -> str:
    from spacy_concner.tables import markdown_table

    models = model_order(records)
    groups = script_groups(records)
    f1 = {(r["model"], r["lang"]): r["f1"] for r in records}
    info = {r["lang"]: r for r in records}  # sentences and gold entities: the same for all models
    descriptions = {r["model"]: r.get("description") or r["model"] for r in records}
    asked = sorted({r["sentences_asked"] for r in records})
    fewer = sorted(f"{lang} {r['sentences']}" for lang, r in info.items() if r["sentences"] < r["sentences_asked"])

    def means(langs: Sequence[str]) -> List[str]:
        """The mean F1 of each model over the languages, "(k)" if it has only k of them."""
        cells = []
        for m in models:
            values = [f1[m, lang] for lang in langs if (m, lang) in f1]
            part = f" ({len(values)})" if 0 < len(values) < len(langs) else ""
            cells.append(_mean(values) + part)
        return cells

    summary = [[script, len(langs), *means(langs)] for script, langs in groups]
    every = [lang for _, langs in groups for lang in langs]
    summary.append(["all", len(every), *means(every)])
    rows = []
    for script, langs in groups:
        for lang in langs:
            cells = [f"{f1[m, lang]:.1f}" if (m, lang) in f1 else "–" for m in models]
            rows.append([script, lang, info[lang]["sentences"], info[lang]["n_gold_entities"], *cells])
        if len(langs) > 1:
            rows.append([f"**{script}**", f"**mean of {len(langs)}**", "", "", *(f"**{c}**" for c in means(langs))])
    rows.append(["**all**", f"**mean of {len(every)}**", "", "", *(f"**{c}**" for c in means(every))])
    lines = [
        "# WikiANN zero-shot matrix",
        "",
        f"F1 (seqeval entity-level micro, 0-100, as `evaluate`) of each model on the first "
        f"{' / '.join(map(str, asked))} sentences of the WikiANN test set (XTREME PAN-X splits) of "
        f"every language" + (f" (all of smaller test sets: {', '.join(fewer)})" if fewer else "")
        + ". Languages are grouped by script: the script of most letters of the sentences "
        "scored (from their Unicode names; Han: CJK ideographs, Kana: Hiragana and Katakana). "
        "Means are unweighted over the languages a model was scored on (their number in "
        "brackets when it is not all of them); a model's own training language is among them "
        "(scored in-language, not zero-shot). Written by "
        "benchmarks/wikiann_matrix.py, which also plots the F1 (wikiann_matrix.png) and "
        "keeps P, R, F1 per type and words per second in wikiann_matrix.json.",
        "",
        "Models:",
        "",
        *(f"- **{m}**: {descriptions[m]}" for m in models),
        "",
        "To reproduce (MODEL: the pipeline folder or package of each model; the data folder is "
        "--data-dir, by default $SPACY_CONCNER_DATA or assets/data):",
        "",
        *(f"    {command}" for command in reproduce_commands(records)),
        "",
        "## Mean F1 per script",
        "",
        markdown_table(["script", "languages", *models], summary, "lr" + "r" * len(models)).rstrip("\n"),
        "",
        "## F1 per language",
        "",
        markdown_table(["script", "lang", "sentences", "gold entities", *models], rows,
                       "llrr" + "r" * len(models)).rstrip("\n"),
        "",
    ]
    return "\n".join(lines)


def reproduce_commands(records: List[Dict]) -> List[str]:
    """The command of each model's records, with MODEL for its path."""
    commands = []
    for model in model_order(records):
        if model.endswith(JOIN_CJK_OFF):
            continue
        own = [r for r in records if r["model"] == model]
        langs = sorted(r["lang"] for r in own)
        all_langs = sorted({r["lang"] for r in records})
        compare = any(r["model"] == model + JOIN_CJK_OFF for r in records)
        asked = own[0]["sentences_asked"]
        description = own[0].get("description")
        command = f"python benchmarks/wikiann_matrix.py --models {model}=MODEL --sentences {asked}"
        if langs != all_langs:
            command += f" --langs {','.join(langs)}"
        if compare:
            command += " --compare-join-cjk"
        if own[0].get("decoding"):
            command += f" --decoding {own[0]['decoding']}"
        if description and description != model:
            command += " --describe " + _quoted(f"{model}={description}")
        commands.append(command)
    return list(dict.fromkeys(commands))


def _quoted(text: str) -> str:
    import shlex

    return shlex.quote(text)


def plot_matrix(records: List[Dict], path: Path) -> Path:
    """Bars of F1 per language and model (side by side, one colour per model), languages
    grouped by script, with each script's mean F1 per model as a dotted line over its
    group. Bars carry their F1 when there are at most LABELLED_MODELS models (the table
    has every number)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from spacy_concner.evaluate import bar_layout
    from spacy_concner.files import atomic_path

    models = model_order(records)
    groups = script_groups(records)
    order = [lang for _, langs in groups for lang in langs]
    by_key = {(r["model"], r["lang"]): r for r in records}
    ordered = [{"system": m, "lang": lang} for lang in order for m in models if (m, lang) in by_key]
    _, positions, width = bar_layout(ordered)
    colours = plt.get_cmap("tab10").colors
    # past 10 models the colours repeat, hatched
    styles = [(colours[k % 10], "" if k < 10 else "///") for k in range(len(models))]
    fig, ax = plt.subplots(figsize=(max(6.0, min(22.0, 2 + len(positions) * 0.3)), 5.0))
    start = 0
    for script, langs in groups:
        end = start + len(langs)
        for model, (colour, hatch) in zip(models, styles):
            keys = [(model, lang) for lang in langs if (model, lang) in by_key]
            if not keys:
                continue
            f1s = [by_key[key]["f1"] for key in keys]
            bars = ax.bar([positions[key] for key in keys], f1s, width, color=colour, hatch=hatch,
                          edgecolor="white", linewidth=0.2)
            if len(models) <= LABELLED_MODELS:
                ax.bar_label(bars, fmt="%.0f", label_type="edge", rotation=90, fontsize=6, padding=1)
            if len(langs) > 1:
                ax.hlines(statistics.mean(f1s), start - 0.45, end - 0.55, colors=colour, linestyles=":",
                          linewidth=1.2)
        ax.text((start + end - 1) / 2, 103, script, ha="center", va="bottom", fontsize=7,
                rotation=90 if len(langs) < 3 else 0)
        if start:
            ax.axvline(start - 0.5, color="grey", linewidth=0.5)
        start = end
    ax.set_xticks(range(len(order)), order, fontsize=8, rotation=90)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("F1 (seqeval entity-level micro)")
    ax.set_title("WikiANN zero-shot F1 per language, grouped by script\n(lines: the mean of a script)",
                 fontsize=10)
    handles = [Patch(facecolor=colour, hatch=hatch, edgecolor="white", label=model)
               for model, (colour, hatch) in zip(models, styles)]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def main(
    models: str = typer.Option(..., help="NAME=MODEL,...: pipeline folders or installed packages"),
    data_dir: Path = typer.Option(DATA_DIR, help="Folder with wikiann/LANG/test-LANG.tsv(.gz) (env SPACY_CONCNER_DATA)"),
    sentences: int = typer.Option(1000, min=1, help="The first N sentences of each test set"),
    langs: str = typer.Option("", help="Languages, comma separated [default: all in DATA_DIR/wikiann]"),
    results: Path = typer.Option(ROOT / "benchmarks" / "results", help="Folder of wikiann_matrix.{json,md,png}"),
    compare_join_cjk: bool = typer.Option(
        False, "--compare-join-cjk", help="Also score each TransformerModel.v2 pipeline with "
        "join_cjk = false on the Han and Kana languages"),
    describe: List[str] = typer.Option([], help="NAME=TEXT: what the model NAME is, for the report [default: NAME]"),
    batch_size: int = typer.Option(64, min=1, help="Docs per nlp.pipe batch"),
    threads: int = typer.Option(1, min=1, help="torch threads"),
    decoding: Optional[str] = typer.Option(None, help="greedy or viterbi: how the models' components "
                                           "read entities from tag distributions [default: each model's own]"),
) -> None:
    """Score pipelines zero-shot on the WikiANN test set of every language, grouped by script."""
    import torch

    import spacy_concner  # noqa: F401  registers the architectures
    from spacy_concner.checksums import DamagedFileError
    from spacy_concner.corpora import CorpusError
    from spacy_concner.loading import PipelineError
    from records import RecordsError

    torch.set_num_threads(threads)
    try:
        parsed = parse_pairs(models, "--models", "en=training/wikiann-en/en-n1000-s1/model-best")
        descriptions = dict(parse_description(text) for text in describe)
        unknown = sorted(set(descriptions) - {name for name, _ in parsed})
        if unknown:
            raise MatrixError(f"--describe names {', '.join(unknown)}, not in --models")
        records = run_matrix(parsed, data_dir, results, sentences, [x for x in langs.split(",") if x],
                             compare_join_cjk, descriptions, batch_size, decoding=decoding)
    except (MatrixError, RecordsError, CorpusError, PipelineError, DamagedFileError) as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Wrote {results / RESULTS_NAME}.json and .md, {plot_matrix(records, results / f'{RESULTS_NAME}.png')}")


if __name__ == "__main__":
    typer.run(main)
