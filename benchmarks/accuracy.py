"""Accuracy benchmark: En, En+Trans, KD from En, the ConCNER teacher, ConCNER and the
ablations, side by side with the same encoder, samples and seeds, on the target test sets.

    python benchmarks/accuracy.py --langs es,nl,de --seeds 1,2,3

A thin driver over project.yml: each system is the project workflow of its name, run with
`spacy project run SYSTEM RUN_DIR --vars...` and the vars of benchmarks/targets.yml.
Weasel's lock file decides what is up to date, with each language's entries of its own
(locks/LANG.lock in the run folder, laid over project.lock for the language's runs).
Every source dataset, N and seed has its own run folder (runs/SOURCE-nN-sSEED-rRECIPE:
project.yml and configs/ copied, its outputs and lock file its own), so that the target
languages of one English sample share its En model, and runs of other samples can go on
at the same time in another process. Resumable: a system whose record exists is skipped;
a run that stopped resumes from the workflow's last finished command.

The recipe (benchmarks/targets.yml) numbers the protocol the records were made with:
every record and run folder carries it, the tables show the current recipe's records
and the earlier recipes' below them, so a change of recipe runs everything again.

Writes to --results (default benchmarks/results):
  accuracy.json   one record per recipe, system, language, N and seed (F1 etc. 0-100)
  accuracy.md     test F1 and English dev F1 per system and language (mean ± std over
                  seeds), same-seed differences, the paper's, records
  accuracy.png    bar chart of F1 per language and system (the current recipe)
  curves/LANG-nN-sSEED-rRECIPE/COMMAND.jsonl   the English dev curve of every training command
"""
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import srsly
import typer

from spacy_concner.evaluate import plot_f1
from spacy_concner.files import atomic_folder, atomic_path
from records import key_of, read_records, replaced, write_records
from trained_pipeline import encoder_precision

ROOT = Path(__file__).resolve().parent.parent
TARGETS = srsly.read_yaml(ROOT / "benchmarks" / "targets.yml")
RECORD_KEY = ("recipe", "system", "lang", "n_source", "seed")
RECIPE = TARGETS["recipe"]  # the current one: its records make the tables
# [system, baseline] pairs: the teachers' under the English dev table too
TEACHER_COMPARISONS = TARGETS["comparisons"]["teachers"]
TEST_COMPARISONS = TARGETS["comparisons"]["students"] + TEACHER_COMPARISONS
ALL_SYSTEMS = TARGETS["systems"] + TARGETS["ablations"] + TARGETS["mcl_systems"] + TARGETS["eat_systems"]  # in table order
CONVERGED_GAIN = 1.0  # F1 points: more in the last quarter of a run, and it was still rising
# copied into a new run folder, so that a resumed run keeps the recipe it started with
FROZEN_FILES = ("project.yml", "configs")
SHARED_FOLDER = "assets"  # linked: one encoder for all runs


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


def project_vars(lang: str, n_source: int, seed: int, data_dir: Path) -> Dict:
    """The project.yml vars of one language, N and seed."""
    target = TARGETS["targets"][lang]
    files = {**TARGETS["sources"][target["source_name"]],
             **{name: target[name] for name in ("target_test", "target_train", "target_dev")}}
    return {
        **TARGETS["run_vars"],
        **target,
        **files,
        "lang": lang,
        "n_source": n_source,
        "seed": seed,
        "data_dir": str(data_dir.resolve()),  # the commands run in the run folder
        "data_ext": data_ext(data_dir, list(files.values())),
    }


def run_path(runs: Path, variables: Dict, recipe: int = RECIPE) -> Path:
    """Where the run folder of the vars' English sample is."""
    return runs / f"{variables['source_name']}-n{variables['n_source']}-s{variables['seed']}-r{recipe}"


def run_dir(runs: Path, variables: Dict) -> Path:
    """The run folder of the vars' English sample: a copy of project.yml and configs/ as
    they were when it was made (later runs in it use that copy), assets/ linked."""
    folder = run_path(runs, variables)
    folder.mkdir(parents=True, exist_ok=True)
    for name in FROZEN_FILES:
        if not (folder / name).exists():
            copy_atomic(ROOT / name, folder / name)
    (ROOT / SHARED_FOLDER).mkdir(exist_ok=True)  # a fresh clone has none; weasel can't mkdir a dangling link
    if not (folder / SHARED_FOLDER).is_symlink() and not (folder / SHARED_FOLDER).exists():
        (folder / SHARED_FOLDER).symlink_to(ROOT / SHARED_FOLDER)
    return folder


@contextmanager
def language_lock(folder: Path, lang: str) -> Iterator[None]:
    """The run folder's project.lock with `lang`'s entries, while its workflows run.

    weasel keeps one lock entry per command name, and the languages of a run folder share
    the commands: each language's run overwrote the other's entries, so that the next
    run of the other redid every step, its teacher's training too (with the same
    result, at the same cost). Each language's entries are kept in locks/LANG.lock and
    laid over project.lock before its next run: its own steps keep their entries, and a
    step it has not run yet (the En model of the English sample, which the languages
    share) keeps the entry of the run that made its output."""
    lock, saved = folder / "project.lock", folder / "locks" / f"{lang}.lock"
    if saved.exists():
        entries = {**(srsly.read_yaml(lock) if lock.exists() else {}), **srsly.read_yaml(saved)}
        with atomic_path(lock) as tmp:
            srsly.write_yaml(tmp, entries)
    try:
        yield
    finally:  # after a failure too: weasel writes an entry after each step that ran
        if lock.exists():
            saved.parent.mkdir(exist_ok=True)
            copy_atomic(lock, saved)


def copy_atomic(source: Path, target: Path) -> None:
    """Copy a file or folder to `target`, never leaving a partial copy there."""
    if source.is_dir():
        with atomic_folder(target) as staging:
            shutil.copytree(source, staging, dirs_exist_ok=True)
    else:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)


def workflow_commands(folder: Path, variables: Dict, system: str) -> List[Dict]:
    """The commands of the project workflow `system`, resolved with the vars."""
    from weasel.util import load_project_config

    overrides = {f"vars.{name}": value for name, value in variables.items()}
    config = load_project_config(folder, overrides=overrides)
    commands = {command["name"]: command for command in config["commands"]}
    return [commands[name] for name in config["workflows"][system]]


def run_workflow(folder: Path, variables: Dict, system: str, threads: int) -> Path:
    """`spacy project run SYSTEM FOLDER --vars...`; its output goes to a log file, which
    a failure names."""
    log = folder / "logs" / f"{variables['lang']}-{system}.log"
    log.parent.mkdir(exist_ok=True)
    argv = [sys.executable, "-m", "spacy", "project", "run", system, str(folder)]
    for name, value in variables.items():
        # weasel strips "--" anywhere in an override: a value like --split-chars is
        # passed as its own argument, behind a space (shlex drops it in the command)
        argv += [f"--vars.{name}", f" {value}" if str(value).startswith("-") else str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(log, "a") as output:
        status = subprocess.run(argv, env=env, stdout=output, stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise RuntimeError(f"`spacy project run {system}` failed (exit code {status}): see {log}")
    return log


def collect(folder: Path, commands: List[Dict], variables: Dict, system: str, results: Path) -> Dict:
    """The record of a finished system workflow; its training curves copied to results."""
    curves = results / "curves" / f"{variables['lang']}-n{variables['n_source']}-s{variables['seed']}-r{RECIPE}"
    curves.mkdir(parents=True, exist_ok=True)
    minutes, dev_f1, late_gain, precisions, model = 0.0, None, None, [], None
    for command in commands:
        curve = next((folder / out / "curve.jsonl" for out in command.get("outputs", [])
                      if (folder / out / "curve.jsonl").is_file()), None)
        if curve is not None:
            shutil.copyfile(curve, curves / f"{command['name']}.jsonl")
            precisions.append(encoder_precision(curve.parent))
            points = [json.loads(line) for line in curve.read_text().splitlines()]
            minutes += points[-1]["seconds"] / 60
            dev_f1 = max(point["score"] for point in points)  # of the system's last model
            late_gain = late_dev_gain([point["score"] for point in points])
            model = curve.parent.relative_to(folder).as_posix()
    (scores,) = json.loads((folder / commands[-1]["outputs"][0]).read_text())
    return {
        "recipe": RECIPE,
        "system": system,
        "lang": variables["lang"],
        "dataset": variables["dataset"],
        "n_source": variables["n_source"],
        "seed": variables["seed"],
        "precision": round(scores["precision"], 2),
        "recall": round(scores["recall"], 2),
        "f1": round(scores["f1"], 2),
        "f1_per_type": {t: round(s["f1"], 2) for t, s in scores["per_type"].items()},
        "english_dev_f1": dev_f1,
        "dev_gain_last_quarter": late_gain,
        # the training folder of the system's last model, in its run folder: `eat` names
        # the En training it translates for
        "model": model,
        "train_minutes": round(minutes, 1),
        # of the system's trainings, in order: fp32, or bf16 (TransformerModel.v3 bfloat16)
        "encoder_precision": "+".join(dict.fromkeys(precisions)) or None,
    }


def late_dev_gain(scores: List[float]) -> float:
    """How much the best English dev F1 of the last quarter of a training curve exceeds
    the best before it: a converged run gains little there (CONVERGED_GAIN)."""
    cut = max(1, len(scores) * 3 // 4)
    return round(max(scores[cut:], default=scores[-1]) - max(scores[:cut]), 2)


def rising_runs(records: List[Dict]) -> List[str]:
    """The trainings whose English dev F1 still rose by more than CONVERGED_GAIN in their
    last quarter, each named once: records of one sample with the same model share the
    training (En on one sample is the model of `en` and `eat` in every one of its
    languages)."""
    runs: Dict[tuple, List[str]] = {}
    for r in records:
        if (r.get("dev_gain_last_quarter") or 0) > CONVERGED_GAIN:
            key = (r.get("dataset"), r["n_source"], r["seed"], r["model"])
            runs.setdefault(key, []).append(f"{r['system']} {r['lang']} s{r['seed']}")
    return [names[0] + (f" (also the training of {', '.join(names[1:])})" if names[1:] else "")
            for names in runs.values()]


@contextmanager
def locked(path: Path, waiting: str = "") -> Iterator[None]:
    """Serialise the use of `path` across benchmark processes (read-modify-write of a
    results file, the workflows of a run folder); `waiting` is printed when another
    process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def mean_std(values: List[float]) -> str:
    """'mean ± std' of F1 figures, or the one figure."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def same_seed_gain(records: List[Dict], column: Tuple[str, int], system: str, base: str,
                   key: str = "f1") -> Optional[float]:
    """Mean `key` (F1) of `system` minus `base` over the seeds of `column` (lang, n_source)
    that have both: samples differ by several F1, so only the same samples are compared."""
    by_seed: Dict[int, Dict[str, float]] = {}
    for r in records:
        if (r["lang"], r["n_source"]) == column and r.get(key) is not None:
            by_seed.setdefault(r["seed"], {})[r["system"]] = r[key]
    diffs = [score[system] - score[base] for score in by_seed.values() if system in score and base in score]
    return statistics.mean(diffs) if diffs else None


def score_table(records: List[Dict], key: str = "f1", paper: bool = True,
                comparisons: Sequence[Sequence[str]] = TEST_COMPARISONS) -> List[str]:
    """Mean ± std of `key` (test F1, or English dev F1) per system (rows) and language
    (columns), the same-seed differences of `comparisons` ([system, baseline]), and the
    paper's rows."""
    if not records:
        return ["No records yet."]
    columns = list(dict.fromkeys((r["lang"], r["n_source"]) for r in records))
    systems = sorted({r["system"] for r in records}, key=lambda s: (ALL_SYSTEMS + [s]).index(s))

    def scores(system, column):
        return [r[key] for r in records
                if (r["system"], r["lang"], r["n_source"]) == (system, *column) and r.get(key) is not None]

    def seeds(column):
        return sorted({r["seed"] for r in records if (r["lang"], r["n_source"]) == column})

    head = [f"{lang} (N={n}, seeds {','.join(map(str, seeds((lang, n))))})" for lang, n in columns]
    lines = ["| system | " + " | ".join(head) + " |", "| --- |" + " ---: |" * len(head)]
    for system in systems:
        cells = [mean_std(values) if values else "" for values in (scores(system, c) for c in columns)]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    for system, base in comparisons:
        gains = [same_seed_gain(records, c, system, base, key) for c in columns]
        if any(g is not None for g in gains):
            cells = ["" if g is None else f"{g:+.2f}" for g in gains]
            lines.append(f"| {system} - {base} (same seeds) | " + " | ".join(cells) + " |")
    for system, by_lang in (TARGETS["paper"].items() if paper else ()):
        lines.append(f"| paper: {system} | " + " | ".join(str(by_lang.get(lang, "")) for lang, _ in columns) + " |")
    return lines


def mcl_target_line(records: List[Dict]) -> str:
    """mCL-NER's target, mcl_ner at least concner on the mean over its languages of the
    same-seed differences, and where it stands."""
    target = TARGETS["mcl_target"]
    langs, (system, base) = target["langs"], target["comparison"]
    columns = list(dict.fromkeys((r["lang"], r["n_source"]) for r in records if r["lang"] in langs))
    gains = {column: same_seed_gain(records, column, system, base) for column in columns}
    if sorted(lang for (lang, _), gain in gains.items() if gain is not None) != sorted(langs):
        return f"mCL-NER's target ({system} at least {base} on the mean of {', '.join(langs)}): not all measured yet."
    mean = statistics.mean(gains.values())
    return (f"mCL-NER's target ({system} at least {base} on the mean of {', '.join(langs)}, each language over the "
            f"seeds with both): {mean:+.2f}, {'met' if mean >= 0 else 'not met'}.")


def of_recipe(records: List[Dict], recipe: int = RECIPE) -> List[Dict]:
    return [r for r in records if r["recipe"] == recipe]


def recipe_line(recipe: int) -> str:
    return f"Recipe {recipe}: {TARGETS['recipes'][recipe]}"


def markdown_report(records: List[Dict]) -> str:
    """The current recipe's table, the earlier recipes' tables under it, every record."""
    current = of_recipe(records)
    lines = [
        "# Accuracy: seqeval entity-level micro F1 on the target test sets",
        "",
        "Mean ± std over seeds (one English sample per seed). Written by "
        "benchmarks/accuracy.py; the paper's rows are ConCNER's Table 3 (mBERT, N = 1000).",
        "",
        recipe_line(RECIPE),
        "",
        *score_table(current),
        "",
        mcl_target_line(current),
        "",
        "English dev F1 of each system's last model (mean ± std over seeds), on which "
        "every choice rests: the checkpoints, and which method the default workflow trains. "
        "A student's is not comparable to a teacher's: ConCNER's students train on target text alone.",
        "",
        *score_table(current, "english_dev_f1", paper=False, comparisons=TEACHER_COMPARISONS),
    ]
    lines += ["", f"Converged: the best English dev F1 of the last quarter of each system's last "
              f"training run is at most {CONVERGED_GAIN} above the best before it "
              f"(dev_gain_last_quarter); runs still rising: "
              + ("; ".join(rising_runs(current)) or "none") + "."]
    for recipe in sorted({r["recipe"] for r in records} - {RECIPE}, reverse=True):
        lines += ["", f"## Recipe {recipe} (earlier)", "", recipe_line(recipe), "",
                  *score_table(of_recipe(records, recipe), paper=False)]
    keys = ["recipe", "system", "lang", "n_source", "seed", "precision", "recall", "f1", "f1_per_type",
            "english_dev_f1", "dev_gain_last_quarter", "train_minutes", "encoder_precision", "model"]
    lines += ["", "## Records", "", "| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    for r in sorted(records, key=lambda r: (-r["recipe"], r["lang"], r["seed"], (ALL_SYSTEMS + [r["system"]]).index(r["system"]))):
        cells = [", ".join(f"{t} {v}" for t, v in r[k].items()) if k == "f1_per_type" else str(r.get(k)) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


class Results:
    """accuracy.json, .md and .png in a folder, safe to add to from several processes."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.json_path = folder / "accuracy.json"

    def has(self, key: Dict) -> bool:
        return any(key_of(r, RECORD_KEY) == key_of(key, RECORD_KEY) for r in read_records(self.json_path, RECORD_KEY))

    def add(self, record: Dict) -> None:
        with locked(self.json_path):
            self.write(replaced(read_records(self.json_path, RECORD_KEY), record, RECORD_KEY))

    def rewrite_report(self) -> None:
        """accuracy.md and .png afresh from accuracy.json (after a change of the report)."""
        with locked(self.json_path):
            self.write(read_records(self.json_path, RECORD_KEY))

    def write(self, records: List[Dict]) -> None:
        write_records(self.json_path, records, markdown_report(records))
        plot_f1(sorted(of_recipe(records), key=lambda r: (ALL_SYSTEMS + [r["system"]]).index(r["system"])),
                self.folder / "accuracy.png")


def recollect_records(table: "Results", runs: Path, data_dir: Path) -> None:
    """Rebuild every record of the current recipe in `table` from the files of its finished
    run (after a change to what a record holds); its workflow must be up to date in its
    run folder."""
    for old in of_recipe(read_records(table.json_path, RECORD_KEY)):
        variables = project_vars(old["lang"], old["n_source"], old["seed"], data_dir)
        folder = run_dir(runs, variables)
        table.add(collect(folder, workflow_commands(folder, variables, old["system"]), variables, old["system"], table.folder))
        print(f"=== {old['system']} {old['lang']} seed {old['seed']}: recollected", flush=True)


def split_option(option: str) -> List[str]:
    """The items of a comma-separated option."""
    return [item.strip() for item in option.split(",") if item.strip()]


def main(
    langs: str = typer.Option("es,nl,de", help=f"Target languages, of {','.join(TARGETS['targets'])}"),
    systems: str = typer.Option(",".join(TARGETS["systems"]), help="Systems (project workflows)"),
    ablation_langs: str = typer.Option("es", help="Languages that also get the ablations"),
    n_source: int = typer.Option(1000, min=1, help="English sample size N"),
    seeds: str = typer.Option("1", help="Seeds (samples), comma separated"),
    data_dir: Path = typer.Option(
        Path(os.environ.get("SPACY_CONCNER_DATA", ROOT / "assets" / "data")),
        help="Corpus folder (env SPACY_CONCNER_DATA)",
    ),
    results: Path = typer.Option(ROOT / "benchmarks" / "results", help="Folder for the results"),
    runs: Path = typer.Option(ROOT / "runs", help="Folder of the run folders"),
    threads: int = typer.Option(1, min=1, help="Torch/OpenMP threads"),
    recollect: bool = typer.Option(False, help="Only rebuild the records in --results from their run folders (nothing runs)"),
    report: bool = typer.Option(False, help="Only rewrite accuracy.md and .png from accuracy.json (nothing runs)"),
) -> None:
    """Run the accuracy benchmark; resumes from --results and the run folders."""
    if recollect:
        return recollect_records(Results(results), runs, data_dir)
    if report:
        return Results(results).rewrite_report()
    unknown = [lang for lang in split_option(langs) if lang not in TARGETS["targets"]]
    wrong = [s for s in split_option(systems) if s not in ALL_SYSTEMS]
    if unknown or wrong:
        raise typer.BadParameter(f"unknown languages {unknown} or systems {wrong}")
    table = Results(results)
    for seed in [int(s) for s in split_option(seeds)]:
        for lang in split_option(langs):
            asked = split_option(systems) + (TARGETS["ablations"] if lang in split_option(ablation_langs) else [])
            run_language(table, lang, asked, n_source, seed, data_dir, runs, threads)
    print(f"Results: {table.json_path}")


def run_language(table: "Results", lang: str, systems: List[str], n_source: int, seed: int,
                 data_dir: Path, runs: Path, threads: int) -> None:
    """The systems of one language and sample that have no record yet, one after the
    other in the sample's run folder, which no other accuracy.py process uses meanwhile
    (its workflows share files and weasel's lock entries)."""
    def todo() -> List[str]:
        return [s for s in systems if not table.has(dict(recipe=RECIPE, system=s, lang=lang, n_source=n_source, seed=seed))]

    if not todo():
        return
    variables = project_vars(lang, n_source, seed, data_dir)
    folder = run_dir(runs, variables)
    waiting = f"=== waiting for {folder}: another accuracy.py runs there"
    with locked(folder / "project.yml", waiting=waiting), language_lock(folder, lang):
        for system in todo():  # again: the other process may have run some
            print(f"=== {system} {lang} N={n_source} seed={seed} in {folder}", flush=True)
            run_workflow(folder, variables, system, threads)
            commands = workflow_commands(folder, variables, system)
            record = collect(folder, commands, variables, system, results=table.folder)
            table.add(record)
            print(f"=== {system} {lang}: F1 {record['f1']:.2f} (English dev {record['english_dev_f1']})", flush=True)


if __name__ == "__main__":
    typer.run(main)
