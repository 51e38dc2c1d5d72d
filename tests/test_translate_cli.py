"""The translate command: chunks, resume after an interruption, the JSON report, errors."""
import json
import shutil

import catalogue
import pytest
from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_concner.cli import app
from spacy_concner.pairs import PAIR_KEY
from spacy_concner.translate import Translation, apertium, translators
from spacy_concner.translate.cli import translate_docbin

from conftest import said, write_keyed_docbin


class Interrupted(Exception):
    pass


class Upper:
    """Uppercases words, keeps entities; fails sentences containing "bad"; can be told to
    stop (like Ctrl-C) after a number of sentences."""

    lang = "xx"

    def __init__(self, stop_after=None):
        self.seen = []
        self.stop_after = stop_after

    def __call__(self, docs):
        for doc in docs:
            if self.stop_after is not None and len(self.seen) == self.stop_after:
                raise Interrupted
            self.seen.append(doc.user_data[PAIR_KEY])
            if "bad" in doc.text:
                yield Translation(doc, None, "bad input")
                continue
            out = Doc(doc.vocab, words=[t.text.upper() for t in doc])
            out.ents = [Span(out, e.start, e.end, label=e.label_) for e in doc.ents]
            out.user_data[PAIR_KEY] = doc.user_data[PAIR_KEY]
            yield Translation(doc, out, notes={"calls": 1})


@pytest.fixture
def source(tmp_path):
    sentences = [(["Anna", "saw", "bad" if i == 4 else "good", "Lima", str(i)], [(0, 1, "PER"), (3, 4, "LOC")])
                 for i in range(10)]
    return write_keyed_docbin(tmp_path / "en.spacy", sentences)


def read(path):
    return [(doc.text, doc.user_data[PAIR_KEY], [(e.text, e.label_) for e in doc.ents])
            for doc in DocBin().from_disk(path).get_docs(Vocab())]


def test_resume_after_interruption_translates_only_the_rest(source, tmp_path):
    output, report = tmp_path / "out.spacy", tmp_path / "out.json"
    with pytest.raises(Interrupted):
        translate_docbin(source, output, Upper(stop_after=7), {"translator": "upper"}, None, 3, report)
    assert not output.exists()
    assert sorted(p.name for p in (tmp_path / "out.spacy.parts").glob("*.spacy")) == ["00000.spacy", "00001.spacy"]
    resumed = Upper()
    summary = translate_docbin(source, output, resumed, {"translator": "upper"}, None, 3, report)
    assert resumed.seen == ["s:6", "s:7", "s:8", "s:9"]
    fresh = tmp_path / "fresh.spacy"
    translate_docbin(source, fresh, Upper(), {"translator": "upper"}, None, 3, tmp_path / "fresh.json")
    assert read(output) == read(fresh)
    assert not (tmp_path / "out.spacy.parts").exists()
    assert json.loads(report.read_text()) == summary


@pytest.mark.parametrize(
    "split_chars,chunk_size", [(None, 5), (True, 3)], ids=["other chunk size", "split into characters"]
)
def test_chunks_of_another_job_are_not_reused(source, tmp_path, split_chars, chunk_size):
    output, report = tmp_path / "out.spacy", tmp_path / "out.json"
    with pytest.raises(Interrupted):
        translate_docbin(source, output, Upper(stop_after=7), {"translator": "upper"}, None, 3, report)
    again = Upper()
    translate_docbin(source, output, again, {"translator": "upper"}, split_chars, chunk_size, report)
    assert len(again.seen) == 10
    if split_chars:
        assert all(len(doc) > 5 for doc in DocBin().from_disk(output).get_docs(Vocab()))


def test_report_counts_sentences_entities_and_failures(source, tmp_path):
    summary = translate_docbin(source, tmp_path / "o.spacy", Upper(), {}, None, 4, tmp_path / "o.json")
    assert (summary["sentences_in"], summary["sentences_out"], summary["sentences_dropped"]) == (10, 9, 1)
    assert summary["dropped"] == [{"pair": "s:4", "reason": "bad input"}]
    assert summary["dropped_reasons"] == {"bad input": 1}
    assert summary["entities_in"] == {"LOC": 10, "PER": 10, "total": 20}
    assert summary["entities_out"] == {"LOC": 9, "PER": 9, "total": 18}
    assert summary["entity_survival"] == {"LOC": 0.9, "PER": 0.9, "total": 0.9}
    assert summary["notes"] == {"calls": 9}
    assert summary["invalid_entities"] == 0 and summary["sentences_per_second"] > 0
    assert [key for _, key, _ in read(tmp_path / "o.spacy")] == [f"s:{i}" for i in range(10) if i != 4]


@pytest.fixture
def upper_registered():
    translators.register("upper_test.v1", func=lambda: Upper())
    yield "upper_test"
    catalogue.REGISTRY.pop(("spacy_concner", "translators", "upper_test.v1"), None)


def test_cli_translates_with_a_registered_translator_and_reports(source, tmp_path, upper_registered):
    result = CliRunner().invoke(app, ["translate", str(source), str(tmp_path / "o.spacy"), "--translator", upper_registered])
    assert result.exit_code == 0, result.output
    assert "9 of 10 sentences" in said(result)
    assert json.loads((tmp_path / "o.json").read_text())["sentences_out"] == 9


@pytest.mark.skipif(shutil.which("apertium-wblank-mode") is None, reason="apt-get install apertium")
def test_cli_suggests_only_packages_the_distribution_has(source, tmp_path, monkeypatch):
    """Regression: --pair eng-fra suggested `apt-get install apertium-eng-fra`, which
    the distribution does not have."""
    monkeypatch.setattr(apertium, "distribution_packages", lambda: ["apertium-eng-cat", "apertium-fr-es"])
    args = ["translate", str(source), str(tmp_path / "o.spacy"), "--translator", "apertium", "--pair", "eng-fra"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "apertium-eng-fra" not in said(result)
    assert "the distribution has no package of it, these have eng: apertium-eng-cat (apt-get install one" in said(result)


def test_cli_refuses_docs_without_pair_keys(tmp_path, upper_registered):
    source = tmp_path / "keyless.spacy"
    DocBin(docs=[Doc(Vocab(), words=["no", "key"])]).to_disk(source)
    result = CliRunner().invoke(app, ["translate", str(source), str(tmp_path / "o.spacy"), "--translator", upper_registered])
    assert result.exit_code == 1
    assert "1 of 1 Docs" in said(result) and "concner_pair" in said(result)


def test_cli_refuses_a_source_that_is_not_a_docbin(tmp_path, upper_registered):
    source = tmp_path / "en.spacy"
    source.write_text("Anna saw Lima\n", encoding="utf8")
    result = CliRunner().invoke(app, ["translate", str(source), str(tmp_path / "o.spacy"), "--translator", upper_registered])
    assert result.exit_code == 1
    assert "cannot be read as a DocBin" in said(result) and "spacy_concner convert" in said(result)


def test_cli_without_pair_for_apertium_asks_for_it(source, tmp_path):
    result = CliRunner().invoke(app, ["translate", str(source), str(tmp_path / "o.spacy"), "--translator", "apertium"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "missing a required argument: 'pair'" in said(result)
    assert not (tmp_path / "o.spacy.parts").exists()
