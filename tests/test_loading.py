"""Damaged pipelines: a checksum manifest per concner component and per package, checked
before unpacking; the plugin's commands name the damaged file in one message."""
import shutil

import pytest
import spacy
from spacy.training.initialize import init_nlp
from typer.testing import CliRunner

from spacy_concner.checksums import CHECKSUMS, DamagedFileError, check_intact, read_checksums
from spacy_concner.cli import app
from spacy_concner.loading import load_pipeline

from conftest import said
from test_pipeline import concner_config


@pytest.fixture(scope="module")
def pipeline_dir(tiny_bert_dir, paired_docbins, tmp_path_factory):
    path = tmp_path_factory.mktemp("pipeline") / "model-best"
    init_nlp(concner_config(tiny_bert_dir, paired_docbins)).to_disk(path)
    return path


def damaged_copy(pipeline_dir, tmp_path, name):
    """A copy of the pipeline with the file `name` cut to half its length."""
    copy = tmp_path / "model-best"
    shutil.copytree(pipeline_dir, copy)
    data = (copy / name).read_bytes()
    (copy / name).write_bytes(data[: len(data) // 2])
    return copy


def test_the_concner_component_writes_a_manifest_of_its_files(pipeline_dir):
    assert set(read_checksums(pipeline_dir / "concner")) == {"cfg", "model"}
    assert not (pipeline_dir / CHECKSUMS).exists()  # the component writes in its own folder only
    check_intact(pipeline_dir, "the pipeline")


def test_spacy_load_names_the_damaged_concner_file(pipeline_dir, tmp_path):
    """Regression: a truncated concner/model gave `ValueError: Unpack failed: incomplete
    input` at the end of a traceback that never named the file."""
    damaged = damaged_copy(pipeline_dir, tmp_path, "concner/model")
    with pytest.raises(DamagedFileError, match="concner/model is damaged") as error:
        spacy.load(damaged)
    assert str(damaged / "concner" / "model") in str(error.value)


@pytest.mark.parametrize("name", ["concner/model", "transformer/model"])
def test_evaluate_and_annotate_name_the_damaged_file_in_one_message(pipeline_dir, paired_docbins, tmp_path, name):
    """Regression: 141 (evaluate) and 156 (annotate) lines of traceback. The
    transformer's files have no manifest of spacy train: the file spaCy was reading is named."""
    damaged = damaged_copy(pipeline_dir, tmp_path, name)
    text = tmp_path / "de.txt"
    text.write_text("Anna wohnt in Lima .\n", encoding="utf8")
    commands = [["evaluate", str(damaged), f"de={paired_docbins['dev']}"],
                ["annotate", str(damaged), str(text), str(tmp_path / "out.spacy")]]
    for command in commands:
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert f"{damaged / name} " in said(result) and "train it again" in said(result)
    assert not (tmp_path / "out.spacy").exists()


def test_load_pipeline_checks_every_manifest_before_loading(pipeline_dir, tmp_path):
    copy = tmp_path / "pipeline"
    shutil.copytree(pipeline_dir, copy)
    (copy / "concner" / "cfg").unlink()
    with pytest.raises(DamagedFileError, match=r"concner/cfg is missing: the pipeline .* cannot be used"):
        load_pipeline(str(copy))
