"""Accuracy benchmark (DESIGN.md section 4): En, En+Trans, KD from En, the ConCNER teacher,
ConCNER and the ablations, side by side with the same encoder, sample and seed.

Every step is a command of project.yml, resolved with the vars of one target language,
N and seed, and run in the project folder; so the benchmark trains exactly what
`spacy project run` trains. Steps shared by several systems or languages (the English
sample, the En baseline of a source dataset, the translation, the teacher) run once.
Resumable: a step is skipped when the step log holds the same resolved command, run on
inputs of the same content (md5), and its outputs exist; evaluation always runs (the evaluate
command itself keeps results newer than the model); a system is skipped when
accuracy.json holds its record. Several instances may run at once (one per core, torch
is faster with 1 thread here) if they share no step, e.g. es (CoNLL English) and de
(WikiANN English) once the encoder step has run: they append to the same files.

    python benchmarks/accuracy.py --langs es,nl,de --n-source 1000 --seeds 1

Writes to --results (default benchmarks/results):
  accuracy.json        one record per system, language, N and seed (F1 etc. 0-100)
  accuracy.md          the records, and F1 per system and language (mean ± std over seeds)
  accuracy.png         bar chart of F1 per language and system
  accuracy_steps.json  wall time and peak RSS of every step, with its commands
"""
import fcntl
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import typer
from weasel.util import get_checksum

from spacy_concner.files import write_atomic

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Source:
    """Labelled English data, relative to the data folder (without .gz)."""

    name: str
    train: str
    dev: str


@dataclass(frozen=True)
class Target:
    dataset: str
    source: Source
    test: str
    unlabelled: str
    translator: str
    pair: str
    translate_options: str = ""


CONLL_EN = Source("conll2003-en", "conll2003/en/eng.train", "conll2003/en/eng.testa")
WIKIANN_EN = Source("wikiann-en", "wikiann/en/train-en.tsv", "wikiann/en/dev-en.tsv")


def _wikiann(lang: str, translator: str, pair: str, translate_options: str = "") -> Target:
    return Target(
        "wikiann", WIKIANN_EN, f"wikiann/{lang}/test-{lang}.tsv",
        f"wikiann/{lang}/train-{lang}.tsv", translator, pair, translate_options,
    )


TARGETS: Dict[str, Target] = {
    "es": Target("conll2002", CONLL_EN, "conll2002/es/esp.testb", "conll2002/es/esp.train",
                 "apertium", "eng-spa"),
    "nl": Target("conll2002", CONLL_EN, "conll2002/nl/ned.testb", "conll2002/nl/ned.train",
                 "lexicon", "eng-nld"),
    "de": _wikiann("de", "lexicon", "eng-deu"),
    "ar": _wikiann("ar", "lexicon", "eng-ara"),
    "hi": _wikiann("hi", "lexicon", "eng-hin"),
    "zh": _wikiann("zh", "lexicon", "eng-zho", "--split-chars"),  # one token per character
}

# project.yml commands each system needs, in order, after the shared preparation
PREPARE = ["convert-dev", "convert-test", "convert-unlabelled", "sample", "encoder"]
SYSTEMS: Dict[str, List[str]] = {
    "en": ["train-en"],
    "en_trans": ["translate", "train-en-trans"],
    "kd_en": ["train-en", "annotate-en", "train-student-en"],
    "concner_teacher": ["translate", "train-teacher"],
    "concner": ["translate", "train-teacher", "annotate", "train-student"],
    "wo_lcl": ["translate", "train-wo-lcl"],
    "wo_tcl": ["translate", "train-wo-tcl"],
    "wo_both": ["translate", "train-en-trans"],  # the same training (project.yml)
}
ABLATIONS = ["wo_lcl", "wo_tcl", "wo_both"]
RECORD_KEY = ("system", "lang", "dataset", "n_source", "seed")


def data_ext(data_dir: Path, names: Sequence[str]) -> str:
    """".gz" if data_dir holds the files gzip-compressed (local mirror), "" if plain (assets)."""
    for ext in (".gz", ""):
        if all((data_dir / f"{name}{ext}").is_file() for name in names):
            return ext
    missing = [name for name in names if not (data_dir / f"{name}.gz").is_file()]
    raise FileNotFoundError(
        f"{data_dir}: no {', '.join(missing)} (plain or .gz): run `spacy project assets` "
        f"or pass --data-dir"
    )


def project_vars(lang: str, n_source: int, seed: int, data_dir: Path, extra: Dict[str, str]) -> Dict:
    target = TARGETS[lang]
    files = {
        "source_train": target.source.train,
        "source_dev": target.source.dev,
        "target_test": target.test,
        "target_train": target.unlabelled,
    }
    return {
        "lang": lang,
        "translator": target.translator,
        "pair": target.pair,
        "translate_options": target.translate_options,
        "source_name": target.source.name,
        "data_dir": str(data_dir.resolve()),  # the commands run in the project folder
        "data_ext": data_ext(data_dir, list(files.values())),
        **files,
        "n_source": n_source,
        "seed": seed,
        **extra,
    }


def project_commands(variables: Dict) -> Dict[str, Dict]:
    from weasel.util import load_project_config

    overrides = {f"vars.{name}": value for name, value in variables.items()}
    config = load_project_config(ROOT, overrides=overrides)
    return {command["name"]: command for command in config["commands"]}


def read_json(path: Path) -> List[Dict]:
    return json.loads(path.read_text(encoding="utf8")) if path.exists() else []


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of `path` across benchmark processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def append_json(path: Path, record: Dict) -> List[Dict]:
    """Append `record` to the JSON list in `path` (re-read: another process may have
    appended since); the whole list after the append."""
    with locked(path):
        records = read_json(path) + [record]
        write_atomic(path, json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    return records


def run_line(line: str, threads: int, log_path: Path) -> float:
    """Run one command line in the project folder, its output appended to `log_path`;
    return its peak RSS in MB (the largest process of its tree, from wait4)."""
    argv = shlex.split(line)
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(log_path, "a") as output:
        output.write(f"$ {line}\n")
        output.flush()
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"exit code {process.returncode}: {line} (output: {log_path})")
    return usage.ru_maxrss / 1024  # kilobytes on Linux


def checksums(deps: Sequence[str]) -> Dict[str, Optional[str]]:
    """md5 of every dep (None if missing), as weasel's project.lock: content, not mtime,
    so that a data folder copied again does not invalidate hours of training."""
    return {dep: get_checksum(ROOT / dep) if (ROOT / dep).exists() else None for dep in deps}


class StepLog:
    """Wall time and peak RSS of every step, in a JSON list; the output of every step
    (the training curves among it) in a text file of the `logs` folder beside it."""

    def __init__(self, path: Path, threads: int):
        self.path = path
        self.threads = threads
        self.logs = path.parent / "logs"

    def output_path(self, name: str, context: Dict) -> Path:
        run = f"{context.get('lang')}-n{context.get('n_source')}-s{context.get('seed')}"
        path = self.logs / run / f"{name.replace(' ', '-')}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def find_done(self, script: List[str], deps: Sequence[str], outputs: Sequence[str]) -> Optional[Dict]:
        """The entry of a finished run of `script` that is still valid, if any."""
        entries = read_json(self.path)
        entry = next((e for e in reversed(entries) if e["script"] == script), None)
        if entry is None or not all((ROOT / output).exists() for output in outputs):
            return None
        return entry if entry.get("deps_md5") == checksums(deps) else None

    def run(self, name: str, script: List[str], deps: Sequence[str], outputs: Sequence[str],
            context: Dict, always: bool = False) -> Dict:
        entry = None if always else self.find_done(script, deps, outputs)
        if entry:
            print(f"== {name}: done before ({entry['seconds']:.0f} s), skipped", flush=True)
            return entry
        deps_md5 = checksums(deps)
        output = self.output_path(name, context)
        output.write_text("")
        print(f"== {name}: {len(script)} command(s), output in {output}", flush=True)
        start = time.perf_counter()
        peak = max(run_line(line, self.threads, output) for line in script)
        entry = {
            "step": name, **context, "script": script, "deps_md5": deps_md5,
            "seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": round(peak, 1),
            "threads": self.threads,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        append_json(self.path, entry)
        print(f"== {name}: {entry['seconds']:.0f} s, peak RSS {entry['peak_rss_mb']:.0f} MB", flush=True)
        return entry


def run_command(log: StepLog, commands: Dict[str, Dict], name: str, context: Dict) -> Dict:
    command = commands[name]
    return log.run(name, command["script"], command.get("deps", []), command.get("outputs", []), context)


def evaluate_line(commands: Dict[str, Dict], system: str) -> str:
    """The project's evaluate command line for `system`."""
    for command in commands.values():
        if command["name"].startswith("evaluate"):
            for line in command["script"]:
                if f"--system {system} " in f"{line} ":
                    return line
    raise KeyError(f"project.yml has no evaluate command for --system {system}")


def run_system(log: StepLog, commands: Dict[str, Dict], system: str, context: Dict) -> Dict:
    """Train and evaluate one system; its record."""
    steps = [run_command(log, commands, name, context) for name in SYSTEMS[system]]
    line = evaluate_line(commands, system)
    output_dir = ROOT / shlex.split(line)[shlex.split(line).index("--output") + 1]
    log.run(f"evaluate {system}", [line], [], [], context, always=True)
    scores = next(r for r in read_json(output_dir / f"{system}.json") if r["lang"] == context["lang"])
    return {
        "system": system,
        "lang": context["lang"],
        "dataset": TARGETS[context["lang"]].dataset,
        "n_source": context["n_source"],
        "seed": context["seed"],
        "precision": round(scores["precision"], 2),
        "recall": round(scores["recall"], 2),
        "f1": round(scores["f1"], 2),
        "train_seconds": round(sum(step["seconds"] for step in steps), 1),
        "peak_rss_mb": round(max(step["peak_rss_mb"] for step in steps), 1),
    }


def _mean_std(values: List[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def markdown_report(records: List[Dict]) -> str:
    langs = sorted({(r["lang"], r["dataset"], r["n_source"]) for r in records})
    systems = [s for s in SYSTEMS if any(r["system"] == s for r in records)]
    head = [f"{lang} ({dataset}, N={n})" for lang, dataset, n in langs]
    lines = [
        "# Accuracy: seqeval entity-level micro F1 on the target test sets",
        "",
        "Mean ± std over seeds. Written by benchmarks/accuracy.py.",
        "",
        "| system | " + " | ".join(head) + " |",
        "| --- |" + " ---: |" * len(head),
    ]
    def f1s(system, column):
        return [r["f1"] for r in records if (r["system"], r["lang"], r["dataset"], r["n_source"]) == (system, *column)]

    for system in systems:
        cells = [_mean_std(f1s(system, column)) if f1s(system, column) else "" for column in langs]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    gains = [
        f"{statistics.mean(f1s('concner', c)) - statistics.mean(f1s('en', c)):+.2f}"
        if f1s("concner", c) and f1s("en", c) else "" for c in langs
    ]
    if any(gains):
        lines.append("| concner - en | " + " | ".join(gains) + " |")
    columns = ["system", "lang", "dataset", "n_source", "seed", "precision", "recall", "f1",
               "train_seconds", "peak_rss_mb"]
    lines += ["", "## Records", "", "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in records]
    return "\n".join(lines) + "\n"


class Results:
    def __init__(self, folder: Path):
        self.json_path = folder / "accuracy.json"
        self.md_path = folder / "accuracy.md"

    @property
    def records(self) -> List[Dict]:
        return read_json(self.json_path)

    def has(self, key: Dict) -> bool:
        return any(all(r[k] == key[k] for k in RECORD_KEY) for r in self.records)

    def add(self, record: Dict) -> None:
        records = append_json(self.json_path, record)
        write_atomic(self.md_path, markdown_report(records))


def _split(option: str) -> List[str]:
    return [item.strip() for item in option.split(",") if item.strip()]


def _parse_vars(items: List[str]) -> Dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--var expects NAME=VALUE, got {item!r}")
        pairs[name] = value
    return pairs


def main(
    langs: str = typer.Option("es,nl,de", help=f"Target languages, of {','.join(TARGETS)}"),
    systems: str = typer.Option(",".join(s for s in SYSTEMS if s not in ABLATIONS), help="Systems"),
    ablation_langs: str = typer.Option("es", help="Languages that also get the ablations"),
    n_source: int = typer.Option(1000, min=1, help="English sample size N"),
    seeds: str = typer.Option("1", help="Seeds, comma separated"),
    data_dir: Path = typer.Option(
        Path(os.environ.get("SPACY_CONCNER_DATA", ROOT.parent / "shared" / "data")),
        help="Corpus folder (env SPACY_CONCNER_DATA)",
    ),
    results: Path = typer.Option(ROOT / "benchmarks" / "results", help="Folder for the results"),
    threads: int = typer.Option(1, min=1, help="Torch/OpenMP threads per step"),
    var: List[str] = typer.Option([], help="Extra project.yml var NAME=VALUE (repeatable)"),
) -> None:
    """Run the accuracy benchmark; resumes from --results."""
    unknown = [lang for lang in _split(langs) if lang not in TARGETS]
    wrong = [s for s in _split(systems) if s not in SYSTEMS]
    if unknown or wrong:
        raise typer.BadParameter(f"unknown languages {unknown} or systems {wrong}")
    extra = _parse_vars(var)
    log = StepLog(results / "accuracy_steps.json", threads)
    table = Results(results)
    for seed in [int(s) for s in _split(seeds)]:
        for lang in _split(langs):
            todo = _split(systems) + (ABLATIONS if lang in _split(ablation_langs) else [])
            keys = [dict(system=s, lang=lang, dataset=TARGETS[lang].dataset, n_source=n_source, seed=seed) for s in todo]
            keys = [key for key in keys if not table.has(key)]
            if not keys:
                continue
            commands = project_commands(project_vars(lang, n_source, seed, data_dir, extra))
            context = dict(lang=lang, n_source=n_source, seed=seed)
            for name in PREPARE:
                run_command(log, commands, name, context)
            for key in keys:
                print(f"=== {key['system']} {lang} N={n_source} seed={seed}", flush=True)
                table.add(run_system(log, commands, key["system"], context))
    if table.records:
        from spacy_concner.evaluate import plot_f1

        plot_f1(table.records, results / "accuracy.png")
    print(f"Results: {table.json_path}, {table.md_path}, {results / 'accuracy.png'}")


if __name__ == "__main__":
    typer.run(main)
