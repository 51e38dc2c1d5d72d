import json
import os
import shutil

import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from typer.testing import CliRunner

from spacy_concner.cli import app
from spacy_concner.evaluate import (
    EvaluateError,
    bar_layout,
    iob2_tags,
    load_records,
    results_table,
    default_system,
    parse_test_arg,
    plot_f1,
    score_tags,
)

from conftest import said

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# (words, gold entities as (start, end, label)); the ruler below knows Ana, Madrid,
# "Banco Central" (ORG) and Toledo (LOC).
GOLD = [
    ("Ana vive en Madrid .".split(), [(0, 1, "PER"), (3, 4, "LOC")]),  # both right
    ("El Banco Central de Chile sube".split(), [(1, 5, "ORG")]),  # partial span
    ("Toledo ganó ayer".split(), [(0, 1, "PER")]),  # type mismatch: LOC predicted
    ("Luis no vino".split(), [(0, 1, "PER")]),  # missed
]
# Entities: gold 5, predicted 4, right 2 (Ana/PER, Madrid/LOC).
# PER: gold 3, predicted 1, right 1. LOC: gold 1, predicted 2 (Madrid, Toledo), right 1.
# ORG: gold 1, predicted 1 (Banco Central), right 0.


def f1(p, r):
    return 2 * p * r / (p + r) if p + r else 0.0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    nlp = spacy.blank("xx")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([
        {"label": "PER", "pattern": "Ana"},
        {"label": "LOC", "pattern": "Madrid"},
        {"label": "LOC", "pattern": "Toledo"},
        {"label": "ORG", "pattern": "Banco Central"},
    ])
    path = tmp_path_factory.mktemp("model") / "ruler"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    vocab = spacy.blank("xx").vocab
    docs = []
    for words, ents in GOLD:
        doc = Doc(vocab, words=words)
        doc.ents = [Span(doc, start, end, label) for start, end, label in ents]
        docs.append(doc)
    path = tmp_path_factory.mktemp("corpus") / "test.spacy"
    DocBin(docs=docs).to_disk(path)
    return path


def test_i_after_o_starts_an_entity():
    # seqeval default mode (like conlleval): O I-PER I-PER is the entity B-PER I-PER.
    scores = score_tags([["O", "I-PER", "I-PER", "O"]], [["O", "B-PER", "I-PER", "O"]])
    assert (scores["precision"], scores["recall"], scores["f1"]) == (100, 100, 100)


def test_score_tags_entity_level():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-PER", "O"]]  # partial, right, wrong type
    scores = score_tags(gold, pred)
    assert scores["precision"] == pytest.approx(100 * 1 / 3)
    assert scores["recall"] == pytest.approx(100 * 1 / 3)
    assert scores["per_type"]["LOC"]["f1"] == 100
    assert scores["per_type"]["ORG"] == {
        "precision": 0, "recall": 0, "f1": 0, "n_gold_entities": 1
    }


def test_iob2_tags_marks_each_entity_start():
    doc = Doc(spacy.blank("xx").vocab, words="Ana Luis en La Paz".split())
    doc.ents = [Span(doc, 0, 1, "PER"), Span(doc, 1, 2, "PER"), Span(doc, 3, 5, "LOC")]
    assert iob2_tags(doc) == ["B-PER", "B-PER", "O", "B-LOC", "I-LOC"]


def test_parse_test_arg(test_file):
    assert parse_test_arg(f"es={test_file}") == ("es", test_file)
    with pytest.raises(EvaluateError, match="LANG=PATH"):
        parse_test_arg(str(test_file))
    with pytest.raises(EvaluateError, match="no such file"):
        parse_test_arg("es=missing.spacy")


@pytest.mark.parametrize(
    "model,system",
    [
        ("training/de/concner-n1000-s1/model-best", "concner-n1000-s1"),
        ("training/de/en-n1000-s1/model-last/", "en-n1000-s1"),
        ("training/de/student", "student"),
        ("de_concner_sm", "de_concner_sm"),
    ],
)
def test_default_system_names_the_training_run_not_model_best(model, system):
    assert default_system(model) == system


def test_default_system_of_a_relative_model_best(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_system("model-best") == tmp_path.name


def test_two_model_best_folders_do_not_overwrite_each_others_results(model_dir, test_file, tmp_path):
    out = tmp_path / "results"
    for run in ("concner-n1000-s1", "en-n1000-s1"):
        shutil.copytree(model_dir, tmp_path / run / "model-best")
        result = CliRunner().invoke(app, ["evaluate", str(tmp_path / run / "model-best"), f"es={test_file}", "--output", str(out)])
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.json")) == ["concner-n1000-s1.json", "en-n1000-s1.json"]


def test_evaluate_command(model_dir, test_file, tmp_path):
    out = tmp_path / "results"
    result = CliRunner().invoke(
        app, ["evaluate", str(model_dir), f"es={test_file}", f"nl={test_file}",
              "--output", str(out), "--system", "ruler", "--batch-size", "2"],
    )
    assert result.exit_code == 0, result.output
    records = json.loads((out / "ruler.json").read_text())
    assert [(r["system"], r["lang"]) for r in records] == [("ruler", "es"), ("ruler", "nl")]
    record = records[0]
    assert record["precision"] == pytest.approx(100 * 2 / 4)
    assert record["recall"] == pytest.approx(100 * 2 / 5)
    assert record["f1"] == pytest.approx(100 * f1(2 / 4, 2 / 5))
    per_type = record["per_type"]
    assert per_type["PER"]["f1"] == pytest.approx(100 * f1(1 / 1, 1 / 3))
    assert per_type["LOC"]["f1"] == pytest.approx(100 * f1(1 / 2, 1 / 1))
    assert per_type["ORG"]["f1"] == 0
    assert (record["n_sents"], record["n_words"]) == (4, 17)
    assert (record["n_gold_entities"], record["n_pred_entities"]) == (5, 4)
    assert record["words_per_second"] > 0
    table = (out / "ruler.md").read_text()
    assert "| ruler | es | 50.00 | 40.00 | 44.44 |" in table
    assert table in result.output


def test_evaluate_resumes_only_while_inputs_are_unchanged(model_dir, test_file, tmp_path):
    test_copy = tmp_path / "test.spacy"
    test_copy.write_bytes(test_file.read_bytes())
    args = ["evaluate", str(model_dir), f"es={test_copy}", "--output", str(tmp_path / "out")]

    def run(*extra):
        result = CliRunner().invoke(app, args + list(extra))
        assert result.exit_code == 0, result.output
        return "kept from" in result.output

    assert not run()
    assert run()
    assert not run("--no-resume")
    later = test_copy.stat().st_mtime + 10
    os.utime(test_copy, (later, later))
    assert not run()


def test_evaluate_rejects_unlabelled_file(model_dir, tmp_path):
    path = tmp_path / "raw.spacy"
    DocBin(docs=[Doc(spacy.blank("xx").vocab, words=["Ana", "vive"])]).to_disk(path)
    result = CliRunner().invoke(app, ["evaluate", str(model_dir), f"es={path}"])
    assert result.exit_code == 1
    assert "no gold entities" in said(result)


def test_results_table_has_a_column_per_type():
    record = {"system": "s", "lang": "de", "precision": 50, "recall": 40, "f1": 44.444,
              "per_type": {"PER": {"f1": 50.0}}, "n_sents": 4, "n_gold_entities": 5,
              "words_per_second": 1234.4}
    other = {**record, "lang": "es", "per_type": {"MISC": {"f1": 10.0}}}
    lines = results_table([record, other]).splitlines()
    assert lines[0].startswith("| system | lang | P | R | F1 | F1 MISC | F1 PER |")
    assert lines[2] == "| s | de | 50.00 | 40.00 | 44.44 | – | 50.00 | 4 | 5 | 1234 |"


def test_plot(tmp_path):
    records = [
        {"system": system, "lang": lang, "f1": f1_score, "seed": seed}
        for seed in (1, 2)
        for system, lang, f1_score in [("en", "es", 60.0 + seed), ("concner", "es", 70.0),
                                       ("en", "de", 50.0), ("concner", "de", 55.0)]
    ]
    results = tmp_path / "accuracy.json"
    results.write_text(json.dumps(records))
    png = tmp_path / "f1.png"
    result = CliRunner().invoke(app, ["plot", str(results), "--output", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert plot_f1(load_records([results]), tmp_path / "again.png").stat().st_size > 1000


def test_bar_layout_packs_each_language_in_record_order():
    """Regression: a language without some systems (the ablations run for es only) left
    empty slots in its group. Bars come in the order of each system's first record."""
    records = [
        {"system": system, "lang": lang, "f1": 50.0}
        for lang, systems in [("de", ["en", "concner", "mine"]), ("es", ["concner", "wo_lcl", "en"])]
        for system in systems
    ]
    systems, positions, width = bar_layout(records)
    assert systems == ["en", "concner", "mine", "wo_lcl"]
    assert width == pytest.approx(0.8 / 3)
    de = [positions[s, "de"] for s in ("en", "concner", "mine")]
    es = [positions[s, "es"] for s in ("en", "concner", "wo_lcl")]
    assert de == pytest.approx([-width, 0.0, width])
    assert es == pytest.approx([1 - width, 1.0, 1 + width])
    assert ("wo_lcl", "de") not in positions


def test_load_records_rejects_other_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"f1": 3}))
    with pytest.raises(ValueError, match="list of records"):
        load_records([path])


@pytest.mark.parametrize("command", ["evaluate", "plot"])
def test_cli_errors_are_one_message_and_exit_code_1(model_dir, tmp_path, command):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"f1": 3}))
    args = [str(model_dir), "es=missing.spacy"] if command == "evaluate" else [str(other)]
    result = CliRunner().invoke(app, [command, *args])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ("no such file missing.spacy" if command == "evaluate" else "list of records") in said(result)


def test_gold_types_the_model_cannot_predict_are_named(model_dir, tmp_path):
    """Regression: CoNLL's MISC scored against a model without MISC came out as F1 0
    for MISC without a word."""
    vocab = spacy.blank("xx").vocab
    doc = Doc(vocab, words="Ana vio la Eurocopa".split())
    doc.ents = [Span(doc, 0, 1, "PER"), Span(doc, 3, 4, "MISC")]
    path = tmp_path / "test.spacy"
    DocBin(docs=[doc]).to_disk(path)
    result = CliRunner().invoke(app, ["evaluate", str(model_dir), f"es={path}"])
    assert result.exit_code == 0, result.output
    assert "cannot predict MISC (1 of the 2 gold entities), which count as missed; it knows LOC, ORG, PER" in said(result)
