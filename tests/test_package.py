"""Packaging a student: model card, requirements, and (integration) the wheel loading
with spacy.load in a fresh virtual environment."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.training.initialize import init_nlp
from spacy.util import load_config
from typer.testing import CliRunner

from spacy_concner.checksums import check_intact, read_checksums
from spacy_concner.cli import app
from spacy_concner.package import PackageError, package_model, plugin_requirements

from test_pipeline import CONFIGS
from conftest import said, tiny_encoder

SENTENCE = "yesterday Elena flew to Quito ."
ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def student_dir(tiny_bert_dir, paired_docbins, tmp_path_factory):
    """An untrained tiny transformer student (packaging does not need a trained one)."""
    overrides = {
        "paths.train": str(paired_docbins["source"]),
        "paths.dev": str(paired_docbins["dev"]),
        **tiny_encoder(tiny_bert_dir),
    }
    nlp = init_nlp(load_config(CONFIGS / "student.cfg", overrides=overrides, interpolate=False))
    path = tmp_path_factory.mktemp("student") / "model-best"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def wheel(student_dir, tmp_path_factory):
    results = tmp_path_factory.mktemp("metrics") / "concner.json"
    record = {"system": "concner", "lang": "test", "test": "corpus/test.spacy", "f1": 61.25,
              "precision": 60.5, "recall": 62.0, "words_per_second": 812.4}
    results.write_text(json.dumps([record]), encoding="utf8")
    out = tmp_path_factory.mktemp("packages")
    return package_model(student_dir, out, "test", version="0.0.1", metrics=[results])


@pytest.fixture(scope="module")
def int8_wheel(student_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("packages")
    return package_model(student_dir, out, "test", name="concner_test_int8", version="0.0.1", quantize=True)


def test_requirements_name_the_plugin_only_when_its_code_is_used():
    assert plugin_requirements((CONFIGS / "student.cfg").read_text()) == ["spacy-concner>=0.1.0,<0.2.0"]
    assert plugin_requirements((CONFIGS / "student_sm.cfg").read_text()) == []


def test_package_folder_carries_meta_and_model_card(wheel, tiny_bert_dir):
    package_dir = wheel.parents[1]
    tiny_bert_layers = json.loads((tiny_bert_dir / "config.json").read_text())["num_hidden_layers"]
    assert wheel.name == "xx_concner_test-0.0.1-py3-none-any.whl"
    meta = json.loads((package_dir / "meta.json").read_text())
    assert meta["name"] == "concner_test" and meta["lang"] == "xx"
    assert "spacy-concner>=0.1.0,<0.2.0" in meta["requirements"]
    assert any(r.startswith("spacy-transformers") for r in meta["requirements"])
    card = (package_dir / "README.md").read_text()
    assert 'spacy.load("xx_concner_test")' in card
    assert "| concner | test | test.spacy | 60.50 | 62.00 | 61.25 | 812 |" in card
    assert "Entity types: LOC, PER" in card and "MIT" in card and "CC BY-SA" in card
    # the depth of the packaged encoder (the default student keeps 6 of e5's 12 layers)
    assert f"Transformer layers kept: {tiny_bert_layers}." in card
    # the student config's loss, not eq. 9's MSE (regression: the card always said MSE)
    assert "by KL divergence per token" in card and "mean squared" not in card
    # the package imports the plugin, entry points installed or not
    assert "from . import concner_plugin" in (package_dir / "xx_concner_test" / "__init__.py").read_text()


def test_a_package_says_how_its_encoder_runs_in_its_config_and_card(int8_wheel, wheel):
    package_dir = int8_wheel.parents[1]
    data = package_dir / "xx_concner_test_int8" / "xx_concner_test_int8-0.0.1"
    assert load_config(data / "config.cfg")["components"]["transformer"]["model"]["quantize"] is True
    assert "encoder's Linear layers run in int8" in (package_dir / "README.md").read_text()
    assert "bfloat16" not in (package_dir / "README.md").read_text()  # int8 replaces it
    assert "in int8" in json.loads((package_dir / "meta.json").read_text())["description"]
    check_intact(data, "the package")
    plain_data = wheel.parents[1] / "xx_concner_test" / "xx_concner_test-0.0.1"
    assert "quantize = false" in (plain_data / "config.cfg").read_text()
    assert "int8" not in (wheel.parents[1] / "README.md").read_text()
    # configs/student.cfg trains and predicts with bfloat16 = true: the card says so
    assert "bfloat16 = true" in (plain_data / "config.cfg").read_text()
    assert "runs under torch's bfloat16 autocast" in (wheel.parents[1] / "README.md").read_text()


def test_only_a_transformer_student_is_quantised(tmp_path):
    nlp = spacy.blank("xx")
    nlp.add_pipe("ner")
    nlp.initialize()
    nlp.to_disk(tmp_path / "cnn")
    result = CliRunner().invoke(app, ["package", str(tmp_path / "cnn"), str(tmp_path / "out"), "--lang", "de", "--quantize"])
    assert result.exit_code == 1
    assert f"{tmp_path / 'cnn' / 'config.cfg'}: --quantize needs a transformer whose model is" in said(result)
    assert "this pipeline has no transformer: package it without --quantize" in said(result)
    assert not (tmp_path / "out").exists()


def test_package_files_are_listed_in_its_checksum_manifest(wheel):
    data = wheel.parents[1] / "xx_concner_test" / "xx_concner_test-0.0.1"
    listed = read_checksums(data)
    assert {"meta.json", "README.md", "transformer/model", "concner/model", "vocab/strings.json"} <= set(listed)
    check_intact(data, "the package")


def test_a_damaged_pipeline_is_not_packaged(student_dir, tmp_path):
    damaged = tmp_path / "model-best"
    shutil.copytree(student_dir, damaged)
    (damaged / "concner" / "model").write_bytes(b"")
    result = CliRunner().invoke(app, ["package", str(damaged), str(tmp_path / "out"), "--lang", "de"])
    assert result.exit_code == 1 and f"{damaged / 'concner' / 'model'} is damaged" in said(result)
    assert not (tmp_path / "out").exists()


def test_a_failed_build_leaves_no_partial_package(student_dir, tmp_path, monkeypatch):
    from spacy_concner import package

    older = tmp_path / "xx_concner_test-0.0.1"
    older.mkdir()
    (older / "setup.py").write_text("# an earlier build")

    def failing_build(package_dir):
        raise PackageError("building the wheel failed")

    monkeypatch.setattr(package, "build_wheel", failing_build)
    with pytest.raises(PackageError):
        package_model(student_dir, tmp_path, "test", version="0.0.1")
    assert [p.name for p in tmp_path.iterdir()] == [older.name]
    assert [p.name for p in older.iterdir()] == ["setup.py"]


def test_bad_name_and_folder_are_refused(student_dir, tmp_path):
    with pytest.raises(PackageError, match="identifier"):
        package_model(student_dir, tmp_path, "pt-br")
    result = CliRunner().invoke(app, ["package", str(tmp_path), str(tmp_path / "out"), "--lang", "de"])
    assert result.exit_code == 1 and "not a trained pipeline folder" in said(result)


def test_integration_wheel_loads_in_a_fresh_venv(wheel, int8_wheel, student_dir, tmp_path):
    """Integration test (tens of seconds, mostly importing torch): install the wheels
    (fp32 and int8) with no dependencies into a new venv that sees the system packages
    (spaCy, torch), then spacy.load them by name from another folder, the training
    folder gone. The plugin is this source tree, on the path: installed or not, the
    package imports it."""
    original = spacy.load(student_dir)
    expected_probs = original.get_pipe("concner").predict([original(SENTENCE)])[0]
    for path in sorted(student_dir.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # the venv's interpreter runs the system pip, installing into the venv
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel), str(int8_wheel)],
                   check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import json, spacy; from spacy_concner.checksums import check_intact; "
        "from spacy_concner.int8 import int8_copies; loaded = {}\n"
        "for name in ('xx_concner_test', 'xx_concner_test_int8'):\n"
        "    nlp = spacy.load(name); check_intact(nlp.path, 'the package'); doc = nlp(%r)\n"
        "    loaded[name] = {'path': str(nlp.path), 'pipes': nlp.pipe_names, "
        "'probs': nlp.get_pipe('concner').predict([doc])[0].tolist(), "
        "'ents': [(e.text, e.label_) for e in doc.ents], "
        "'int8': len(int8_copies(nlp.get_pipe('transformer').model.transformer))}\n"
        "print(json.dumps(loaded))" % SENTENCE
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([python, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    fp32, int8 = loaded["xx_concner_test"], loaded["xx_concner_test_int8"]
    for package in (fp32, int8):
        assert package["path"].startswith(str(venv))
        assert package["pipes"] == ["transformer", "concner"]
    numpy.testing.assert_allclose(fp32["probs"], expected_probs, rtol=1e-5)
    assert [tuple(e) for e in fp32["ents"]] == [(e.text, e.label_) for e in original(SENTENCE).ents]
    assert fp32["int8"] == 0 and int8["int8"] > 0
    numpy.testing.assert_allclose(int8["probs"], expected_probs, atol=0.05)
