"""benchmarks/workflow_time.py: the data vars of `make all`, the workflow's commands in
order, a failing step named with its log, the table."""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workflow_time():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("workflow_time", ROOT / "benchmarks" / "workflow_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_vars_follow_the_files(workflow_time, tmp_path):
    (tmp_path / "wikiann" / "en").mkdir(parents=True)
    assert workflow_time.data_vars(tmp_path)[-1] == ""
    (tmp_path / "wikiann" / "en" / "train-en.tsv.gz").write_bytes(b"")
    assert workflow_time.data_vars(tmp_path) == ["--vars.data_dir", str(tmp_path.resolve()), "--vars.data_ext", ".gz"]


def test_the_steps_are_the_workflows_commands(workflow_time):
    steps = workflow_time.workflow(ROOT, "all")
    assert steps[0] == "convert-dev" and steps[-1] == "package"
    assert steps.index("train-teacher") < steps.index("annotate") < steps.index("train-student")


def test_a_failing_step_names_its_log(workflow_time, tmp_path):
    (tmp_path / "project.yml").write_text(
        "commands:\n  - name: fail\n    script:\n      - \"python -c 'import sys; sys.exit(3)'\"\n"
    )
    log = tmp_path / "steps.log"
    with pytest.raises(RuntimeError, match=r"run fail.*exit code 3.*steps.log"):
        workflow_time.run_step(tmp_path, "fail", [], log)


def test_the_table_lists_every_step_and_the_total(workflow_time):
    record = {"workflow": "all", "cores": 2, "machine": "x86_64, 2 cores", "command": "python ...",
              "steps": [{"command": "sample", "minutes": 0.25}, {"command": "train-teacher", "minutes": 12.0}],
              "total_minutes": 12.2}
    table = workflow_time.markdown(record)
    assert "| sample | 0.2 |" in table and "| train-teacher | 12.0 |" in table
    assert "| **total** | **12.2** |" in table


def test_the_workflows_last_evaluation_is_read(workflow_time, tmp_path):
    (tmp_path / "project.yml").write_text(
        "commands:\n"
        "  - name: train\n    script:\n      - echo\n"
        "  - name: evaluate\n    script:\n      - echo\n    outputs:\n      - metrics/m.json\n"
        "workflows:\n  all:\n    - train\n    - evaluate\n  bare:\n    - train\n"
    )
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "m.json").write_text('[{"precision": 60.0, "recall": 70.0, "f1": 64.616}]')
    assert workflow_time.evaluation(tmp_path, "all") == {"metrics": "metrics/m.json", "precision": 60.0, "recall": 70.0, "f1": 64.62}
    assert workflow_time.evaluation(tmp_path, "bare") == {}
    record = {"workflow": "all", "cores": 2, "machine": "m", "command": "c", "steps": [], "total_minutes": 1.0,
              **workflow_time.evaluation(tmp_path, "all")}
    assert "(metrics/m.json): F1 64.62 (P 60.00, R 70.00)" in workflow_time.markdown(record)
