"""Apertium on real CoNLL-2003 sentences; restart and failure reporting with a fake pipeline."""
import os
import shutil
import sys
from pathlib import Path

import pytest
from spacy.tokens import DocBin
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_concner.cli import app
from spacy_concner.corpora import read_docs
from spacy_concner.files import read_docbin, write_docbin
from spacy_concner.pairs import PAIR_KEY
from spacy_concner.translate import BackendMissing, apertium, get_translator
from spacy_concner.translate.apertium import MODES_DIR, missing_mode
from spacy_concner.translate.cli import translate_docbin

from conftest import needs_apertium_mode, said

needs_apertium = needs_apertium_mode("eng-spa")
# Stands in for the Apertium pipeline: echoes each NUL-terminated input; dies on CRASH, hangs on HANG
FAKE_PIPELINE = """
import sys, time
buffer = b""
while True:
    chunk = sys.stdin.buffer.read1(65536)
    if not chunk:
        break
    buffer += chunk
    while b"\\0" in buffer:
        text, buffer = buffer.split(b"\\0", 1)
        if b"CRASH" in text:
            sys.exit(1)
        if b"HANG" in text:
            time.sleep(60)
        sys.stdout.buffer.write(text + b"\\0")
        sys.stdout.buffer.flush()
"""


@pytest.fixture(scope="module")
def english_docs(shared_data_dir):
    return read_docs(shared_data_dir / "conll2003/en/eng.testa.gz", Vocab(), max_sents=40)


@needs_apertium
def test_apertium_translates_real_sentences_with_their_entities(english_docs):
    results = list(get_translator("apertium", pair="eng-spa")(english_docs))
    assert [r.source for r in results] == english_docs
    assert all(r.error is None for r in results)
    for result in results:
        assert result.doc.user_data[PAIR_KEY] == result.source.user_data[PAIR_KEY]
        assert sorted(e.label_ for e in result.doc.ents) == sorted(e.label_ for e in result.source.ents)
        assert all(e.text == e.text.strip() for e in result.doc.ents)
    spanish = " ".join(r.doc.text for r in results)
    assert " de " in spanish and " el " in spanish.lower()


@needs_apertium
def test_apertium_entity_survives_reordering():
    doc = keyed_doc("The European Commission said on Thursday .", [(1, 3, "ORG")])
    (result,) = get_translator("apertium", pair="eng-spa")([doc])
    assert [(e.text, e.label_) for e in result.doc.ents] == [("Comisión europea", "ORG")]


@needs_apertium
def test_a_resumed_translation_is_the_uninterrupted_one(tmp_path):
    """Apertium carries state from sentence to sentence: after the first sentence's
    unbalanced '', a pipeline that went on to the next chunk gave "Pasilloderaíl de
    velocidad alta" for the second, a resumed run's new pipeline "Alto-pasillo de raíl
    de la velocidad"."""
    docs = [keyed_doc("The song is included in the album Yanni Voces '' .", [(7, 9, "ORG")]),
            keyed_doc("Mumbai–Ahmedabad high-speed rail corridor", [(0, 4, "ORG")])]
    docs[1].user_data[PAIR_KEY] = "test:1"
    source = tmp_path / "en.spacy"
    write_docbin(docs, source)

    def translate(output, translator):
        translate_docbin(source, output, translator, {"translator": "apertium"}, None, 1, tmp_path / "report.json")
        return [doc.text for doc in read_docbin(output, Vocab())]

    class StopsAtTheSecondChunk:
        def __init__(self):
            self.apertium = get_translator("apertium", pair="eng-spa")
            self.lang, self.calls = self.apertium.lang, 0

        def __call__(self, chunk):
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            return self.apertium(chunk)

    uninterrupted = translate(tmp_path / "whole.spacy", get_translator("apertium", pair="eng-spa"))
    with pytest.raises(KeyboardInterrupt):
        translate(tmp_path / "resumed.spacy", StopsAtTheSecondChunk())
    assert translate(tmp_path / "resumed.spacy", get_translator("apertium", pair="eng-spa")) == uninterrupted


def keyed_doc(text, ents):
    from spacy.tokens import Doc, Span

    doc = Doc(Vocab(), words=text.split())
    doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
    doc.user_data[PAIR_KEY] = "test:0"
    return doc


def fake_pipeline_translator(tmp_path, batch_size):
    """An eng-spa translator whose process runs FAKE_PIPELINE (crashes on CRASH, hangs on HANG)."""
    translator = get_translator("apertium", pair="eng-spa", timeout=1.0, batch_size=batch_size)
    script = tmp_path / "fake.py"
    script.write_text(FAKE_PIPELINE)
    translator.process.script = f"exec {sys.executable} {script}"
    return translator


@needs_apertium
def test_failing_sentences_are_reported_and_the_process_restarted(tmp_path):
    translator = fake_pipeline_translator(tmp_path, batch_size=8)
    texts = ["Peter ok", "CRASH now", "Anna ok", "HANG here", "Lima ok"]
    docs = [keyed_doc(text, [(0, 1, "PER")]) for text in texts]
    results = list(translator(docs))
    assert [r.error for r in results] == [None, "apertium died", None, "apertium timed out", None]
    assert [r.doc.ents[0].text for r in results if r.doc is not None] == ["Peter", "Anna", "Lima"]


def fake_program(tmp_path, monkeypatch, name: str, script: str) -> None:
    """A shell script on the front of PATH under the name of a program."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / name
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


@pytest.fixture
def failing_wblank_mode(tmp_path, monkeypatch):
    """An apertium-wblank-mode that fails as a broken installation does."""
    fake_program(tmp_path, monkeypatch, "apertium-wblank-mode", "echo 'cannot read the mode' >&2\nexit 1\n")


def test_a_failing_wblank_mode_names_the_mode_and_what_to_do(tmp_path, failing_wblank_mode):
    (tmp_path / "eng-deu.mode").write_text("cat\n")
    with pytest.raises(BackendMissing, match="'eng-deu'.*cannot read the mode.*reinstall apertium and the package that installed .*eng-deu.mode"):
        get_translator("apertium", pair="eng-deu", modes_dir=str(tmp_path))


@pytest.mark.skipif(not (shutil.which("apertium-wblank-mode") and shutil.which("lt-proc")), reason="apt-get install apertium")
def test_a_mode_whose_pipeline_fails_names_the_mode_and_its_error(tmp_path):
    (tmp_path / "eng-deu.mode").write_text("lt-proc /no/such/eng-deu.automorf.bin\n")  # its package removed
    with pytest.raises(BackendMissing, match="'eng-deu'.*/no/such/eng-deu.automorf.bin.*echo house \\| apertium eng-deu"):
        get_translator("apertium", pair="eng-deu", modes_dir=str(tmp_path))


@pytest.mark.skipif(not shutil.which("apertium-wblank-mode"), reason="apt-get install apertium")
def test_a_pipeline_slower_to_start_than_a_batch_timeout_is_not_broken(tmp_path, monkeypatch):
    """Regression: the start-up check had the batch timeout, so a pipeline that took
    longer to load its automata (on a busy machine) was reported as a broken install."""
    fake_program(tmp_path, monkeypatch, "slow-cat", "sleep 1\nexec cat\n")
    (tmp_path / "eng-deu.mode").write_text("slow-cat\n")
    translator = get_translator("apertium", pair="eng-deu", modes_dir=str(tmp_path), timeout=0.2)
    assert translator.process.script.startswith("slow-cat") and translator.process.timeout == 0.2


@pytest.mark.skipif(not Path(MODES_DIR, "eng-spa.mode").exists(), reason="apt-get install apertium-eng-spa")
def test_the_cli_reports_a_broken_mode_without_a_traceback(tmp_path, failing_wblank_mode):
    source = tmp_path / "en.spacy"
    DocBin(docs=[keyed_doc("Peter sleeps", [(0, 1, "PER")])], store_user_data=True).to_disk(source)
    result = CliRunner().invoke(app, ["translate", str(source), str(tmp_path / "es.spacy"), "--pair", "eng-spa"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Apertium mode 'eng-spa'" in said(result) and "reinstall" in said(result)


@pytest.mark.parametrize("pair,index,expected", [
    ("eng-cat", ["apertium-eng-cat", "apertium-en-es"], ": apt-get install apertium-eng-cat"),
    ("spa-eng_US", ["apertium-eng-spa"], ": apt-get install apertium-eng-spa"),  # the package of both directions
    ("eng-fra", ["apertium-eng-cat", "apertium-en-es", "apertium-fr-es"],
     "; the distribution has no package of it, these have eng: apertium-eng-cat, apertium-en-es "
     "(apt-get install one, then pass one of its modes as --pair)"),
    ("deu-eng", ["apertium-eng-cat"], "; the distribution has no Apertium package with deu: use another --translator"),
    ("eng-fra", None, ": find a package with `apt-cache search apertium eng-fra`"),
])
def test_a_missing_mode_suggests_only_packages_the_distribution_has(tmp_path, monkeypatch, pair, index, expected):
    monkeypatch.setattr(apertium, "distribution_packages", lambda: index)
    (tmp_path / "eng-spa.mode").write_text("cat\n")
    message = str(missing_mode(pair, tmp_path))
    assert message == f"No Apertium mode {pair!r} in {tmp_path} (installed: eng-spa){expected}"


@needs_apertium
def test_a_failing_sentence_alone_in_its_batch_is_reported(tmp_path):
    translator = fake_pipeline_translator(tmp_path, batch_size=1)
    docs = [keyed_doc(text, [(0, 1, "PER")]) for text in ["Peter ok", "CRASH now", "Anna ok"]]
    assert [r.error for r in translator(docs)] == [None, "apertium died", None]
