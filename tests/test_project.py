"""project.yml is a valid weasel project whose commands fit together (no real run), and
benchmarks/accuracy.py agrees with it."""
import importlib.util
import json
import os
import shlex
import time
from pathlib import Path

import pytest
import spacy.cli
import typer
from spacy.cli._util import parse_config_overrides
from spacy.util import load_config
from weasel.util import load_project_config

from spacy_concner.cli import app as concner_app
from spacy_concner.evaluate import BENCHMARK_SYSTEMS

ROOT = Path(__file__).resolve().parent.parent
DATA_OVERRIDES = {"vars.data_dir": "/data", "vars.data_ext": ".gz"}
# options of `spacy train` that are not config overrides, with their values
TRAIN_CLI_OPTIONS = {"--output", "--gpu-id", "--code"}


@pytest.fixture(scope="module")
def project():
    return load_project_config(ROOT, overrides=DATA_OVERRIDES)


@pytest.fixture(scope="module")
def commands(project):
    return {command["name"]: command for command in project["commands"]}


@pytest.fixture(scope="module")
def accuracy():
    spec = importlib.util.spec_from_file_location("accuracy", ROOT / "benchmarks" / "accuracy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script_lines(commands):
    return [shlex.split(line) for command in commands.values() for line in command["script"]]


def train_overrides(argv):
    """Config overrides of a `python -m spacy train CONFIG ...` command line."""
    args = argv[5:]
    kept = [a for i, a in enumerate(args)
            if a not in TRAIN_CLI_OPTIONS and (i == 0 or args[i - 1] not in TRAIN_CLI_OPTIONS)]
    return parse_config_overrides(kept)


def command_names(app: typer.Typer) -> set:
    """Sub-command paths of a typer app, e.g. {"convert", "encoder e5"}."""
    group = typer.main.get_command(app)

    def walk(command, prefix):
        subcommands = getattr(command, "commands", {})
        if not subcommands:
            return {prefix.strip()}
        return set().union(*(walk(sub, f"{prefix} {name}") for name, sub in subcommands.items()))

    return walk(group, "")


def test_weasel_accepts_project(project):
    # load_project_config validates against weasel's schema and exits on errors
    assert {"all", "baselines", "ablations", "small"} <= set(project["workflows"])


def test_workflow_all_ends_with_the_package(project):
    steps = project["workflows"]["all"]
    assert steps[-1] == "package"
    for before, after in [("translate", "train-teacher"), ("train-teacher", "annotate"),
                          ("annotate", "train-student"), ("train-student", "evaluate")]:
        assert steps.index(before) < steps.index(after)


@pytest.mark.parametrize("workflows", [["all"], ["baselines"], ["ablations"], ["all", "small"]])
def test_every_dep_is_made_earlier_or_is_given(project, commands, workflows):
    made = set()
    for name in [step for workflow in workflows for step in project["workflows"][workflow]]:
        for dep in commands[name].get("deps", []):
            given = dep.startswith("/data/") or (ROOT / dep).is_file()
            assert dep in made or given, f"{workflows}: {name} needs {dep}, made by no earlier step"
        made.update(commands[name].get("outputs", []))


def test_every_output_is_written_by_its_script(commands):
    for command in commands.values():
        script = " ".join(command["script"])
        for output in command.get("outputs", []):
            assert output in script or Path(output).parent.as_posix() in script, (
                f"{command['name']}: its script does not mention {output}"
            )


def test_data_dir_var_reaches_the_data_deps(commands):
    deps = [dep for command in commands.values() for dep in command.get("deps", [])]
    assert not [dep for dep in deps if ", " in dep], "paths merged into one string"
    assert "/data/wikiann/de/test-de.tsv.gz" in deps
    assert not any(dep.startswith("assets/data") for dep in deps)


def test_every_called_command_exists(commands):
    concner_commands = command_names(concner_app)
    spacy_commands = command_names(spacy.cli.app)
    for argv in script_lines(commands):
        if argv[:3] == ["python", "-m", "spacy_concner"]:
            assert " ".join(argv[3:5]) in concner_commands or argv[3] in concner_commands, argv
        elif argv[:3] == ["python", "-m", "spacy"]:
            assert argv[3] in spacy_commands, argv
        else:
            assert argv[:3] == ["python", "-m", "pip"], f"unexpected program: {argv}"


def test_training_overrides_exist_in_their_configs(commands):
    for argv in script_lines(commands):
        if argv[3:4] != ["train"]:
            continue
        config_path = ROOT / argv[4]
        assert config_path.is_file(), config_path
        config = load_config(config_path, interpolate=False)
        for key in train_overrides(argv):  # spacy train would add a misspelt key silently
            node = config
            for part in key.split("."):
                assert part in node, f"{argv[4]} has no {key}"
                node = node[part]


def test_ablations_drop_the_right_loss(commands):
    def overrides(name):
        return train_overrides(shlex.split(commands[name]["script"][0]))

    assert overrides("train-wo-lcl")["components.concner.label_loss"] is None
    assert overrides("train-wo-lcl")["components.concner.beta"] == 0.5
    assert overrides("train-wo-tcl")["components.concner.translation_loss"] is None
    assert "components.concner.beta" not in overrides("train-teacher")


def test_ablation_without_both_losses_is_en_trans(commands):
    """w/o LCL and TCL reuses the En+Trans model: that is only right while En+Trans is the
    teacher's command with beta = 0."""
    teacher, en_trans = (commands[name]["script"][0] for name in ("train-teacher", "train-en-trans"))
    assert en_trans.replace(" --components.concner.beta 0", "").replace("en_trans-", "concner_teacher-") == teacher


def test_benchmark_systems_use_project_commands(accuracy, commands):
    for system, steps in accuracy.SYSTEMS.items():
        assert set(steps) <= set(commands), system
        assert f"--system {system} " in accuracy.evaluate_line(commands, system) + " "
    assert set(accuracy.PREPARE) <= set(commands)
    assert tuple(accuracy.SYSTEMS) == BENCHMARK_SYSTEMS  # the plot's order


def test_benchmark_vars_resolve_for_every_target(accuracy, tmp_path):
    for target in accuracy.TARGETS.values():
        for name in (target.source.train, target.source.dev, target.test, target.unlabelled):
            (tmp_path / f"{name}.gz").parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / f"{name}.gz").touch()
    variables = accuracy.project_vars("es", 500, 3, tmp_path, {"max_steps": "7"})
    commands = accuracy.project_commands(variables)
    assert "--pair eng-spa" in commands["translate"]["script"][0]
    assert f"{tmp_path}/conll2003/en/eng.train.gz" in commands["sample"]["script"][0]
    assert "--n-sents 500 --seed 3" in commands["sample"]["script"][0]
    assert "--training.max_steps 7" in commands["train-teacher"]["script"][0]
    assert commands["train-en"]["outputs"] == ["training/conll2003-en/en-n500-s3"]


def test_benchmark_data_ext_names_the_missing_file(accuracy, tmp_path):
    (tmp_path / "a.tsv").touch()
    assert accuracy.data_ext(tmp_path, ["a.tsv"]) == ""
    with pytest.raises(FileNotFoundError, match="b.tsv .*spacy project assets"):
        accuracy.data_ext(tmp_path, ["a.tsv", "b.tsv"])


def test_benchmark_step_log_runs_once_and_reruns_after_input_change(accuracy, tmp_path, monkeypatch):
    monkeypatch.setattr(accuracy, "ROOT", tmp_path)
    (tmp_path / "in.txt").write_text("a")
    log = accuracy.StepLog(tmp_path / "steps.json", threads=1)
    script = ["python -c \"import pathlib; p = pathlib.Path('out.txt'); p.write_text(p.read_text() + 'x' if p.exists() else 'x')\""]
    run = lambda: log.run("copy", script, ["in.txt"], ["out.txt"], {"lang": "xx"})  # noqa: E731
    first = run()
    assert first["peak_rss_mb"] > 0 and (tmp_path / "out.txt").read_text() == "x"
    run()
    assert (tmp_path / "out.txt").read_text() == "x", "a finished step ran again"
    assert len(json.loads((tmp_path / "steps.json").read_text())) == 1
    later = time.time() + 10
    os.utime(tmp_path / "in.txt", (later, later))  # e.g. the data folder copied again
    run()
    assert (tmp_path / "out.txt").read_text() == "x", "a step whose input was only touched ran again"
    (tmp_path / "in.txt").write_text("b")
    run()
    assert (tmp_path / "out.txt").read_text() == "xx", "a step with a changed input was skipped"


def test_benchmark_step_failure_names_the_command(accuracy, tmp_path, monkeypatch):
    monkeypatch.setattr(accuracy, "ROOT", tmp_path)
    log = accuracy.StepLog(tmp_path / "steps.json", threads=1)
    with pytest.raises(RuntimeError, match="exit code 3.*output: .*fail.log"):
        log.run("fail", ["python -c 'print(42); raise SystemExit(3)'"], [], [], {})
    assert not (tmp_path / "steps.json").exists()


def test_benchmark_step_output_is_kept_per_run_and_step(accuracy, tmp_path, monkeypatch):
    monkeypatch.setattr(accuracy, "ROOT", tmp_path)
    log = accuracy.StepLog(tmp_path / "steps.json", threads=1)
    log.run("train en", ["python -c 'print(\"dev F1 61.5\")'"], [], [], dict(lang="es", n_source=5, seed=2))
    output = (tmp_path / "logs" / "es-n5-s2" / "train-en.log").read_text()
    assert output.startswith("$ python -c") and "dev F1 61.5" in output


def test_benchmark_markdown_shows_mean_and_std_over_seeds(accuracy):
    base = dict(system="concner", lang="es", dataset="conll2002", n_source=1000, precision=0,
                recall=0, train_seconds=1, peak_rss_mb=1)
    records = [dict(base, seed=1, f1=70.0), dict(base, seed=2, f1=72.0),
               dict(base, system="en", seed=1, f1=65.5)]
    report = accuracy.markdown_report(records)
    assert "| concner | 71.00 ± 1.41 |" in report
    assert "| en | 65.50 |" in report
    assert "| concner - en | +5.50 |" in report
    assert "es (conll2002, N=1000)" in report


def test_benchmark_results_keep_records_of_concurrent_runs(accuracy, tmp_path):
    """Two benchmark processes append to one accuracy.json: neither loses the other's."""
    first, second = accuracy.Results(tmp_path), accuracy.Results(tmp_path)
    base = dict(system="en", dataset="wikiann", n_source=1000, seed=1, precision=0, recall=0,
                f1=1.0, train_seconds=1, peak_rss_mb=1)
    first.add(dict(base, lang="de"))
    second.add(dict(base, lang="es"))
    assert first.has(dict(base, lang="es")) and second.has(dict(base, lang="de"))
    assert len(json.loads((tmp_path / "accuracy.json").read_text())) == 2
    report = (tmp_path / "accuracy.md").read_text()
    assert "| en | de |" in report and "| en | es |" in report
