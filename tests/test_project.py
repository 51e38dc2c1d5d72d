"""project.yml is a valid weasel project whose commands fit together (no real run), and
benchmarks/accuracy.py agrees with it."""
import contextlib
import fcntl
import json
import shlex
import threading
from pathlib import Path

import pytest
import spacy.cli
import typer
from spacy.cli._util import parse_config_overrides
from spacy.util import load_config
from weasel.util import load_project_config

from spacy_concner.cli import app as concner_app

from conftest import benchmark_module

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
    return benchmark_module("accuracy")


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
    assert {"all", "small", "en", "concner"} <= set(project["workflows"])


def test_workflow_all_ends_with_the_package(project):
    steps = project["workflows"]["all"]
    assert steps[-1] == "package"
    for before, after in [("translate", "train-teacher"), ("train-teacher", "annotate"),
                          ("annotate", "train-student"), ("train-student", "evaluate")]:
        assert steps.index(before) < steps.index(after)


WORKFLOWS = [[name] for name in load_project_config(ROOT)["workflows"] if name != "small"]


@pytest.mark.parametrize("workflows", WORKFLOWS + [["all", "small"]])
def test_every_dep_is_made_earlier_or_is_given(project, commands, workflows):
    made = set()
    for name in [step for workflow in workflows for step in project["workflows"][workflow]]:
        for dep in commands[name].get("deps", []):
            given = dep.startswith("/data/") or (ROOT / dep).is_file()
            assert dep in made or given, f"{workflows}: {name} needs {dep}, made by no earlier step"
        made.update(commands[name].get("outputs", []))


def test_student_options_are_train_options_with_the_students_vars():
    raw = load_project_config(ROOT, interpolate=False)["vars"]
    students = (raw["student_options"].replace("student_encoder", "encoder")
                .replace("student_frozen_layers", "frozen_layers"))
    assert students == raw["train_options"]


def test_the_default_student_has_six_layers_and_the_benchmarks_the_teachers(commands, accuracy):
    """The packaged student is the fast 6-layer one; the benchmark's run_vars give every
    student the teacher's encoder, so its commands stay those of its earlier runs."""
    default = train_overrides(shlex.split(commands["train-student"]["script"][0]))
    assert default["paths.encoder"] == "assets/encoders/e5-small-6"
    assert "concner-l6-n1000-s1/model-best" in commands["package"]["script"][0]
    run_vars = {f"vars.{name}": value for name, value in accuracy.TARGETS["run_vars"].items()}
    benchmark = load_project_config(ROOT, overrides={**DATA_OVERRIDES, **run_vars})
    changed = {command["name"]: command for command in benchmark["commands"]}
    overrides = train_overrides(shlex.split(changed["train-student"]["script"][0]))
    assert overrides["paths.encoder"] == "assets/encoders/e5-small"
    assert overrides["components.transformer.model.frozen_layers"] == benchmark["vars"]["frozen_layers"]
    assert changed["evaluate"]["outputs"] == ["metrics/de-n1000-s1/concner.json"]


def test_a_shallower_student_gets_its_own_encoder_and_files(commands):
    shallow = {"vars.student_layers": 4, "vars.student_encoder": "assets/encoders/e5-small-4",
               "vars.student_frozen_layers": 2, "vars.student_tag": "l4-n1000-s1"}
    project = load_project_config(ROOT, overrides={**DATA_OVERRIDES, **shallow})
    changed = {command["name"]: command for command in project["commands"]}
    assert changed["encoder-student"]["script"] == ["python -m spacy_concner encoder e5 assets/encoders/e5-small-4 --layers 4"]
    for name in ("train-student", "train-student-en"):
        overrides = train_overrides(shlex.split(changed[name]["script"][0]))
        assert overrides["paths.encoder"] == "assets/encoders/e5-small-4"
        assert overrides["components.transformer.model.frozen_layers"] == 2
        assert "assets/encoders/e5-small-4" in changed[name]["deps"]
        assert "-l4-n1000-s1" in changed[name]["outputs"][0]
    assert changed["evaluate"]["outputs"] == ["metrics/de-l4-n1000-s1/concner.json"]
    assert "concner-l4-n1000-s1/model-best" in changed["package"]["script"][0]
    for name in ("encoder", "train-teacher", "annotate", "train-en"):  # the teacher's side stays
        assert changed[name] == commands[name], name


def test_mcl_ner_self_trains_on_confident_sentences_and_concner_distils_all(commands):
    """annotate-mcl applies mCL-NER's filter (delta 0.9, 20% of the entity-free
    sentences, the workflow's seed); ConCNER's annotate keeps every sentence."""
    mcl = shlex.split(commands["annotate-mcl"]["script"][0])
    assert mcl[-6:] == ["--min-confidence", "0.9", "--keep-empty", "0.2", "--seed", "1"]
    for name in ("annotate", "annotate-en", "annotate-eat", "annotate-sm", "annotate-dev"):
        script = commands[name]["script"][0]
        assert "--min-confidence" not in script and "--keep-empty" not in script, name


def test_unlabelled_text_is_a_seeded_sample_of_the_whole_split():
    """D_U is sampled from the whole target train split with the run's seed, not read from
    its first lines: those of CoNLL-2002 Dutch are a few articles (section headings,
    one-word lines), and a student distilled on them lost to its teacher."""
    project = load_project_config(ROOT, overrides={**DATA_OVERRIDES, "vars.seed": 2})
    commands = {command["name"]: command for command in project["commands"]}
    for name, size in (("convert-unlabelled", "2000"), ("convert-unlabelled-sm", "20000")):
        argv = shlex.split(commands[name]["script"][0])
        assert "--max-sents" not in argv, name
        assert argv[argv.index("--n-sents") + 1] == size and argv[argv.index("--seed") + 1] == "2", name
        assert commands[name]["outputs"] == [f"corpus/de/unlabelled-{size}-s2.spacy"], name


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
        elif argv[:2] == ["python", "-c"]:
            compile(argv[2], "python -c", "exec")
        else:
            assert argv[:3] == ["python", "-m", "pip"], f"unexpected program: {argv}"


def test_clean_removes_what_the_workflows_made(commands, tmp_path, monkeypatch):
    for name in ("corpus/de", "training", "metrics", "packages", "assets/encoders", "configs"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "project.lock").touch()
    monkeypatch.chdir(tmp_path)
    (argv,) = (shlex.split(line) for line in commands["clean"]["script"])
    exec(argv[2], {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["assets", "configs"]


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


def test_every_benchmark_system_is_a_workflow_ending_in_its_evaluation(project, commands, accuracy):
    for system in accuracy.ALL_SYSTEMS:
        last = commands[project["workflows"][system][-1]]
        assert f"--system {system} " in last["script"][0] + " ", system
        assert last["outputs"][0].endswith(f"/{system}.json"), system


def test_benchmark_vars_resolve_for_every_target(accuracy, tmp_path):
    data = tmp_path / "data"
    for lang, target in accuracy.TARGETS["targets"].items():
        source = accuracy.TARGETS["sources"][target["source_name"]]
        for name in (*source.values(), target["target_test"], target["target_train"], target["target_dev"]):
            (data / f"{name}.gz").parent.mkdir(parents=True, exist_ok=True)
            (data / f"{name}.gz").touch()
        variables = accuracy.project_vars(lang, 500, 3, data)
        folder = accuracy.run_dir(tmp_path / "runs", variables)
        assert folder.name == f"{target['source_name']}-n500-s3-r{accuracy.RECIPE}"
        assert (folder / "configs" / "concner.cfg").is_file()
        commands = {c["name"]: c for c in accuracy.workflow_commands(folder, variables, "concner")}
        assert f"--pair {target['pair']}" in commands["translate"]["script"][0]
        assert f"{data}/{source['source_train']}.gz" in commands["sample"]["script"][0]
        assert "--n-sents 500 --seed 3" in commands["sample"]["script"][0]
        assert commands["evaluate"]["outputs"] == [f"metrics/{lang}-n500-s3/concner.json"]
        (dev,) = accuracy.workflow_commands(folder, variables, "small")[1]["deps"]
        assert dev == f"{data}/{target['target_dev']}.gz"


def test_benchmark_data_ext_names_the_missing_file(accuracy, tmp_path):
    (tmp_path / "a.tsv").touch()
    assert accuracy.data_ext(tmp_path, ["a.tsv"]) == ""
    with pytest.raises(FileNotFoundError, match="b.tsv .*spacy project assets"):
        accuracy.data_ext(tmp_path, ["a.tsv", "b.tsv"])


# A project with the shape of project.yml's system workflows, without any training: a
# "train" command that writes a dev curve, an "evaluate" command that writes the metrics.
TOY_PROJECT = """
vars:
  lang: xx
  tag: t
  fail: 0
  opts: ""
commands:
  - name: train
    script:
      - python configs/toy.py train ${vars.fail} ${vars.opts}
    outputs:
      - training/m
  - name: evaluate
    script:
      - python configs/toy.py evaluate metrics/${vars.lang}-${vars.tag}/toy.json
    deps:
      - training/m
    outputs:
      - metrics/${vars.lang}-${vars.tag}/toy.json
workflows:
  toy:
    - train
    - evaluate
"""
TOY_SCRIPT = """
import json, pathlib, sys
if sys.argv[1] == "train":
    out = pathlib.Path("training/m")
    out.mkdir(parents=True, exist_ok=True)
    points = [{"score": 40.0, "seconds": 30}, {"score": 61.5, "seconds": 90}]
    (out / "curve.jsonl").write_text("\\n".join(json.dumps(p) for p in points))
    (out / "model-best").mkdir(exist_ok=True)
    (out / "model-best" / "config.cfg").write_text(
        "[components]\\n[components.transformer]\\n[components.transformer.model]\\nbfloat16 = true\\n"
    )
    print("trained with", sys.argv[3:])
    sys.exit(int(sys.argv[2]))
out = pathlib.Path(sys.argv[2])
out.parent.mkdir(parents=True, exist_ok=True)
scores = {"precision": 50, "recall": 70, "f1": 58.333, "per_type": {"PER": {"f1": 60.0}}}
out.write_text(json.dumps([scores]))
"""


@pytest.fixture
def toy_project(accuracy, tmp_path, monkeypatch):
    root = tmp_path / "project"
    for name in ("configs", "assets"):
        (root / name).mkdir(parents=True)
    (root / "project.yml").write_text(TOY_PROJECT)
    (root / "configs" / "toy.py").write_text(TOY_SCRIPT)
    monkeypatch.setattr(accuracy, "ROOT", root)
    variables = {"lang": "xx", "tag": "t", "source_name": "src", "n_source": 5, "seed": 2,
                 "dataset": "toy", "fail": 0, "opts": "--split-chars"}
    return accuracy.run_dir(tmp_path / "runs", variables), variables


def test_benchmark_runs_a_workflow_and_records_its_result(accuracy, toy_project, tmp_path):
    folder, variables = toy_project
    log = accuracy.run_workflow(folder, variables, "toy", threads=1)
    assert "trained with ['--split-chars']" in log.read_text()  # an option as a var value
    commands = accuracy.workflow_commands(folder, variables, "toy")
    record = accuracy.collect(folder, commands, variables, "toy", tmp_path / "results")
    assert record["f1"] == 58.33 and record["f1_per_type"] == {"PER": 60.0}
    assert record["english_dev_f1"] == 61.5 and record["train_minutes"] == 1.5
    assert record["encoder_precision"] == "bf16"
    assert record["model"] == "training/m"  # the training folder, in the run folder
    assert record["recipe"] == accuracy.RECIPE
    assert (tmp_path / "results" / "curves" / f"xx-n5-s2-r{accuracy.RECIPE}" / "train.jsonl").is_file()
    accuracy.run_workflow(folder, variables, "toy", threads=1)  # weasel: nothing to do
    assert log.read_text().count("trained") == 1


def test_benchmark_run_folder_on_a_fresh_clone_has_an_assets_folder(accuracy, tmp_path, monkeypatch):
    """Regression: a clone without assets/ got a dangling assets link, on which weasel's
    mkdir failed ("File exists"), and a second run_dir tried to link it again."""
    root = tmp_path / "project"
    (root / "configs").mkdir(parents=True)
    (root / "project.yml").write_text(TOY_PROJECT)
    monkeypatch.setattr(accuracy, "ROOT", root)
    variables = {"source_name": "src", "n_source": 5, "seed": 2}
    folder = accuracy.run_dir(tmp_path / "runs", variables)
    assert (folder / "assets").is_dir() and (folder / "assets").resolve() == root / "assets"
    assert accuracy.run_dir(tmp_path / "runs", variables) == folder


def test_a_run_folder_keeps_the_recipe_it_was_made_with(accuracy, tmp_path, monkeypatch):
    root = tmp_path / "project"
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "a.cfg").write_text("lr = 1")
    (root / "project.yml").write_text(TOY_PROJECT)
    monkeypatch.setattr(accuracy, "ROOT", root)
    variables = {"source_name": "src", "n_source": 5, "seed": 2}
    folder = accuracy.run_dir(tmp_path / "runs", variables)
    (root / "configs" / "a.cfg").write_text("lr = 2")  # the repository's recipe changes
    (root / "project.yml").write_text("title: changed")
    assert accuracy.run_dir(tmp_path / "runs", variables) == folder
    assert (folder / "configs" / "a.cfg").read_text() == "lr = 1"
    assert (folder / "project.yml").read_text() == TOY_PROJECT
    assert not (folder / "configs").is_symlink() and not any(folder.glob("*.partial"))


def test_benchmark_failure_names_the_log(accuracy, toy_project):
    folder, variables = toy_project
    with pytest.raises(RuntimeError, match=r"run toy.*exit code 3.*logs/xx-toy.log"):
        accuracy.run_workflow(folder, {**variables, "fail": 3}, "toy", threads=1)


def test_benchmark_markdown_shows_mean_and_std_over_seeds(accuracy):
    base = dict(recipe=accuracy.RECIPE, system="concner", lang="es", dataset="conll", n_source=1000, precision=0,
                recall=0, f1_per_type={"PER": 1.0}, english_dev_f1=80.0, train_minutes=1, encoder_precision="bf16")
    records = [dict(base, seed=1, f1=70.0), dict(base, seed=2, f1=72.0),
               dict(base, system="en", seed=1, f1=65.5)]
    report = accuracy.markdown_report(records)
    assert "| concner | 71.00 ± 1.41 |" in report
    assert "| en | 65.50 |" in report
    assert "| concner - en (same seeds) | +4.50 |" in report  # seed 1 only: en has no seed 2
    assert report.count(" | bf16 |") == 3
    assert "| paper: concner | 73.43 |" in report
    assert "es (N=1000, seeds 1,2)" in report


def test_benchmark_results_keep_records_of_concurrent_runs(accuracy, tmp_path):
    """Two benchmark processes append to one accuracy.json: neither loses the other's."""
    first, second = accuracy.Results(tmp_path), accuracy.Results(tmp_path)
    base = dict(recipe=accuracy.RECIPE, system="en", dataset="wikiann", n_source=1000, seed=1, precision=0, recall=0,
                f1=1.0, f1_per_type={}, english_dev_f1=1.0, train_minutes=1)
    first.add(dict(base, lang="de"))
    second.add(dict(base, lang="es"))
    assert first.has(dict(base, lang="es")) and second.has(dict(base, lang="de"))
    assert len(json.loads((tmp_path / "accuracy.json").read_text())) == 2
    report = (tmp_path / "accuracy.md").read_text()
    assert "| en | de |" in report and "| en | es |" in report
    assert (tmp_path / "accuracy.png").is_file()


def test_late_dev_gain_tells_a_rising_curve_from_a_flat_one(accuracy):
    rising = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
    flat = [0.0, 50.0, 80.0, 85.0, 85.5, 85.2, 85.4, 85.3]
    assert accuracy.late_dev_gain(rising) == 20.0 > accuracy.CONVERGED_GAIN
    assert accuracy.late_dev_gain(flat) == -0.1
    report = accuracy.markdown_report([
        {"recipe": accuracy.RECIPE, "system": s, "lang": "es", "dataset": "conll", "n_source": 1000, "seed": 1, "precision": 1.0,
         "recall": 1.0, "f1": 1.0, "f1_per_type": {}, "english_dev_f1": 80.0,
         "dev_gain_last_quarter": gain, "train_minutes": 1.0, "model": f"training/{s}"}
        for s, gain in (("en", 3.5), ("concner", 0.2))
    ])
    assert "runs still rising: en es s1." in report
    # one training behind several records (En of a sample: its `en` and `eat` records in
    # every language) is named once; another training with the same figures is not that one
    shared = {"recipe": accuracy.RECIPE, "dataset": "wikiann", "n_source": 1000, "seed": 1, "precision": 1.0,
              "recall": 1.0, "f1": 1.0, "f1_per_type": {}, "english_dev_f1": 76.1, "train_minutes": 1.0,
              "dev_gain_last_quarter": 1.2, "model": "training/wikiann-en/en-n1000-s1"}
    report = accuracy.markdown_report(
        [{**shared, "system": s, "lang": lang} for s, lang in (("en", "de"), ("eat", "de"), ("en", "ar"))]
        + [{**shared, "system": "concner_teacher", "lang": "de", "model": "training/de/concner_teacher-n1000-s1"}]
    )
    assert "runs still rising: en de s1 (also the training of eat de s1, en ar s1); concner_teacher de s1." in report


def test_a_run_folder_in_use_is_waited_for(accuracy, tmp_path, capsys):
    """Two accuracy.py processes on one sample take turns in its run folder: the second
    says it waits, and goes on when the first lets go."""
    held = open(tmp_path / "project.yml.lock", "w")
    fcntl.flock(held, fcntl.LOCK_EX)  # another open file: as another process holds it
    entered = threading.Event()

    def second():
        with accuracy.locked(tmp_path / "project.yml", waiting="=== waiting for the folder"):
            entered.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not entered.wait(0.5)
    fcntl.flock(held, fcntl.LOCK_UN)
    held.close()
    assert entered.wait(10)
    thread.join()
    assert "=== waiting for the folder" in capsys.readouterr().out


def test_systems_recorded_while_waiting_for_the_folder_are_not_run_again(accuracy, tmp_path, monkeypatch):
    table = accuracy.Results(tmp_path / "results")
    record = {"recipe": accuracy.RECIPE, "system": "en", "lang": "de", "dataset": "wikiann", "n_source": 1000,
              "seed": 1, "precision": 1.0, "recall": 1.0, "f1": 1.0, "f1_per_type": {}, "english_dev_f1": 80.0,
              "train_minutes": 1.0}

    locked = accuracy.locked

    @contextlib.contextmanager
    def other_process_finishes(path, waiting=""):
        if path.name == "project.yml":
            table.add(record)  # what the process we waited for recorded
        with locked(path, waiting):
            yield

    monkeypatch.setattr(accuracy, "plot_f1", lambda records, path: None)
    monkeypatch.setattr(accuracy, "locked", other_process_finishes)
    monkeypatch.setattr(accuracy, "project_vars", lambda *args: {"source_name": "wikiann-en", "n_source": 1000, "seed": 1})
    ran = []
    monkeypatch.setattr(accuracy, "run_workflow", lambda folder, variables, system, threads: ran.append(system))
    accuracy.run_language(table, "de", ["en"], 1000, 1, tmp_path, tmp_path / "runs", 1)
    assert ran == []


def test_a_new_record_replaces_the_one_with_its_key(accuracy, tmp_path, monkeypatch):
    monkeypatch.setattr(accuracy, "plot_f1", lambda records, path: None)
    table = accuracy.Results(tmp_path)
    record = {"recipe": accuracy.RECIPE, "system": "en", "lang": "es", "dataset": "conll", "n_source": 1000, "seed": 1, "precision": 1.0,
              "recall": 1.0, "f1": 1.0, "f1_per_type": {}, "english_dev_f1": 80.0, "train_minutes": 1.0}
    table.add(record)
    table.add({**record, "seed": 2})
    table.add({**record, "f1": 2.0, "dev_gain_last_quarter": 0.1})
    records = json.loads(table.json_path.read_text())
    assert sorted((r["seed"], r["f1"]) for r in records) == [(1, 2.0), (2, 1.0)]


def test_the_concner_gain_compares_the_same_seeds(accuracy):
    base = {"recipe": accuracy.RECIPE, "lang": "de", "dataset": "wikiann", "n_source": 1000, "precision": 1.0, "recall": 1.0,
            "f1_per_type": {}, "english_dev_f1": 80.0, "train_minutes": 1.0}
    report = accuracy.markdown_report([
        {**base, "system": "en", "seed": 1, "f1": 69.0}, {**base, "system": "en", "seed": 2, "f1": 66.0},
        {**base, "system": "concner", "seed": 1, "f1": 70.0},
    ])
    assert "| concner - en (same seeds) | +1.00 |" in report


def test_the_mcl_target_is_the_mean_over_its_languages_of_same_seed_differences(accuracy):
    base = {"recipe": accuracy.RECIPE, "n_source": 1000, "precision": 1.0, "recall": 1.0, "f1_per_type": {},
            "english_dev_f1": 80.0, "train_minutes": 1.0}
    records = [{**base, "system": system, "lang": lang, "seed": seed, "f1": f1} for system, lang, seed, f1 in [
        ("concner", "es", 1, 66.0), ("mcl_ner", "es", 1, 64.0), ("concner", "es", 2, 60.0),
        ("concner", "nl", 1, 68.0), ("mcl_ner", "nl", 1, 69.0),
    ]]
    assert accuracy.same_seed_gain(records, ("es", 1000), "mcl_ner", "concner") == -2.0  # seed 2 has no mcl_ner
    assert "not all measured yet" in accuracy.mcl_target_line(records)
    records += [{**base, "system": "concner", "lang": "de", "seed": 1, "f1": 70.0},
                {**base, "system": "mcl_ner", "lang": "de", "seed": 1, "f1": 71.5}]
    assert accuracy.mcl_target_line(records).endswith(": +0.17, met.")
    records[1]["f1"] = 63.0
    assert accuracy.mcl_target_line(records).endswith(": -0.17, not met.")
    assert "| mcl_ner - concner (same seeds) |" in accuracy.markdown_report(records)


def test_report_rewrites_the_table_and_plot_from_the_records(accuracy, tmp_path, monkeypatch):
    plotted = []
    monkeypatch.setattr(accuracy, "plot_f1", lambda records, path: plotted.append(path))
    record = {"recipe": accuracy.RECIPE, "system": "en", "lang": "es", "dataset": "conll", "n_source": 1000,
              "seed": 1, "precision": 1.0, "recall": 1.0, "f1": 61.5, "f1_per_type": {}, "english_dev_f1": 80.0,
              "train_minutes": 1.0}
    (tmp_path / "accuracy.json").write_text(json.dumps([record]))
    accuracy.main(results=tmp_path, report=True, recollect=False)
    assert "| en | 61.50 |" in (tmp_path / "accuracy.md").read_text()
    assert plotted == [tmp_path / "accuracy.png"]
    assert json.loads((tmp_path / "accuracy.json").read_text()) == [record]


def test_each_language_of_a_run_folder_keeps_its_own_project_lock(accuracy, tmp_path):
    """Regression: weasel's one lock entry per command name made the languages of a run
    folder overwrite each other's, and each run of one language retrained what the
    other had trained (the seed-1 es teacher with the code-switched view, after nl)."""
    import srsly

    lock = tmp_path / "project.lock"
    srsly.write_yaml(lock, {"sample": "en sample"})
    with accuracy.language_lock(tmp_path, "es"):
        srsly.write_yaml(lock, {"sample": "en sample", "translate": "es", "train-en": "en model"})
    with accuracy.language_lock(tmp_path, "nl"):  # its first run: project.lock as it is
        srsly.write_yaml(lock, {**srsly.read_yaml(lock), "translate": "nl"})
    with accuracy.language_lock(tmp_path, "es"):
        assert srsly.read_yaml(lock)["translate"] == "es"
    srsly.write_yaml(tmp_path / "locks" / "nl.lock", {"translate": "nl"})  # from before es trained En
    with pytest.raises(RuntimeError), accuracy.language_lock(tmp_path, "nl"):
        assert srsly.read_yaml(lock) == {"sample": "en sample", "translate": "nl", "train-en": "en model"}
        srsly.write_yaml(lock, {**srsly.read_yaml(lock), "train-teacher": "nl"})
        raise RuntimeError("a later step failed")
    assert srsly.read_yaml(tmp_path / "locks" / "nl.lock")["train-teacher"] == "nl"


def test_a_new_recipe_runs_again_and_shows_the_earlier_one_below(accuracy, tmp_path, monkeypatch):
    """Records of an earlier recipe neither count as done nor mix into the current table."""
    monkeypatch.setattr(accuracy, "plot_f1", lambda records, path: None)
    table = accuracy.Results(tmp_path)
    old = {"recipe": accuracy.RECIPE - 1, "system": "en", "lang": "es", "dataset": "conll", "n_source": 1000,
           "seed": 1, "precision": 1.0, "recall": 1.0, "f1": 60.0, "f1_per_type": {}, "english_dev_f1": 80.0,
           "train_minutes": 1.0, "encoder_precision": "fp32"}
    table.add(old)
    assert not table.has({**old, "recipe": accuracy.RECIPE})
    table.add({**old, "recipe": accuracy.RECIPE, "f1": 65.0})
    report = (tmp_path / "accuracy.md").read_text()
    current, earlier = report.split(f"## Recipe {accuracy.RECIPE - 1} (earlier)")
    assert "| en | 65.00 |" in current and "60.00" not in current
    assert "| en | 60.00 |" in earlier
    assert accuracy.TARGETS["recipes"][accuracy.RECIPE] in current
    assert len(json.loads(table.json_path.read_text())) == 2


def test_the_benchmark_runs_what_the_current_recipe_lacks(accuracy, tmp_path, monkeypatch):
    """Regression: main asked Results.has without the recipe (KeyError). A system with a
    record of an earlier recipe only runs again; one of the current recipe is skipped."""
    data = tmp_path / "data"
    target = accuracy.TARGETS["targets"]["de"]
    source = accuracy.TARGETS["sources"][target["source_name"]]
    for name in (*source.values(), target["target_test"], target["target_train"], target["target_dev"]):
        (data / f"{name}.gz").parent.mkdir(parents=True, exist_ok=True)
        (data / f"{name}.gz").touch()
    ran = []
    monkeypatch.setattr(accuracy, "run_workflow", lambda folder, variables, system, threads: ran.append(system))
    monkeypatch.setattr(accuracy, "workflow_commands", lambda folder, variables, system: [])
    monkeypatch.setattr(accuracy, "collect", lambda folder, commands, variables, system, results: dict(
        recipe=accuracy.RECIPE, system=system, lang="de", dataset="wikiann", n_source=1000, seed=1, f1=1.0,
        precision=1.0, recall=1.0, f1_per_type={}, english_dev_f1=1.0, train_minutes=1.0, encoder_precision="bf16"))
    monkeypatch.setattr(accuracy, "plot_f1", lambda records, path: None)
    results = tmp_path / "results"
    accuracy.Results(results).add(dict(accuracy.collect(None, None, None, "en", None), recipe=accuracy.RECIPE - 1))
    accuracy.Results(results).add(accuracy.collect(None, None, None, "concner_teacher", None))
    accuracy.main(langs="de", systems="en,concner_teacher", ablation_langs="", n_source=1000, seeds="1",
                  data_dir=data, results=results, runs=tmp_path / "runs", threads=1, recollect=False, report=False)
    assert ran == ["en"]


def test_the_report_shows_english_dev_f1_beside_the_test_f1(accuracy):
    """The method and the checkpoints are chosen on English dev: accuracy.md shows its
    mean per system and language, and the same-seed differences, under the test table."""
    base = {"recipe": accuracy.RECIPE, "lang": "de", "dataset": "wikiann", "n_source": 1000, "precision": 1.0,
            "recall": 1.0, "f1_per_type": {}, "train_minutes": 1.0}
    report = accuracy.markdown_report([
        {**base, "system": "concner_teacher", "seed": 1, "f1": 70.0, "english_dev_f1": 75.0},
        {**base, "system": "concner_teacher", "seed": 2, "f1": 68.0, "english_dev_f1": 73.0},
        {**base, "system": "mcl_ner_teacher", "seed": 1, "f1": 71.0, "english_dev_f1": 74.5},
        {**base, "system": "eat", "seed": 1, "f1": 60.0, "english_dev_f1": None},
        {**base, "system": "en", "seed": 1, "f1": 69.0, "english_dev_f1": 76.0},
        {**base, "system": "concner", "seed": 1, "f1": 70.5, "english_dev_f1": 67.0},
    ])
    test_table, dev_table = report.split("English dev F1 of each system's last model")[:2]
    assert "| concner_teacher | 69.00 ± 1.41 |" in test_table
    assert "| mcl_ner_teacher - concner_teacher (same seeds) | +1.00 |" in test_table
    assert "| concner_teacher | 74.00 ± 1.41 |" in dev_table
    assert "| mcl_ner_teacher - concner_teacher (same seeds) | -0.50 |" in dev_table
    assert "| eat |  |" in dev_table and "paper:" not in dev_table.split("## Records")[0]
    assert "| concner - en (same seeds) | +1.50 |" in test_table
    assert "| concner - en (same seeds)" not in dev_table  # a student against a model trained on English
