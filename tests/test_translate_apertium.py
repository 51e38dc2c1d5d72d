"""Apertium on real CoNLL-2003 sentences; restart and failure reporting with a fake pipeline."""
import shutil
import sys
from pathlib import Path

import pytest
from spacy.vocab import Vocab

from spacy_concner.corpora import read_docs
from spacy_concner.pairs import PAIR_KEY
from spacy_concner.translate import BackendMissing, get_translator
from spacy_concner.translate.apertium import MODES_DIR

needs_apertium = pytest.mark.skipif(
    shutil.which("apertium-wblank-mode") is None or not Path(MODES_DIR, "eng-spa.mode").exists(),
    reason="apt-get install apertium apertium-eng-spa",
)
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
    doc = read_docs_one("The European Commission said on Thursday .", [(1, 3, "ORG")])
    (result,) = get_translator("apertium", pair="eng-spa")([doc])
    assert [(e.text, e.label_) for e in result.doc.ents] == [("Comisión europea", "ORG")]


def read_docs_one(text, ents):
    from spacy.tokens import Doc, Span

    doc = Doc(Vocab(), words=text.split())
    doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
    doc.user_data[PAIR_KEY] = "test:0"
    return doc


@needs_apertium
def test_failing_sentences_are_reported_and_the_process_restarted(tmp_path):
    translator = get_translator("apertium", pair="eng-spa", timeout=1.0, batch_size=8)
    script = tmp_path / "fake.py"
    script.write_text(FAKE_PIPELINE)
    translator.process.script = f"exec {sys.executable} {script}"
    texts = ["Peter ok", "CRASH now", "Anna ok", "HANG here", "Lima ok"]
    docs = [read_docs_one(text, [(0, 1, "PER")]) for text in texts]
    results = list(translator(docs))
    assert [r.error for r in results] == [None, "apertium died", None, "apertium timed out", None]
    assert [r.doc.ents[0].text for r in results if r.doc is not None] == ["Peter", "Anna", "Lima"]


def test_missing_mode_names_the_package(tmp_path):
    with pytest.raises(BackendMissing, match="apt-get install apertium-eng-xyz"):
        get_translator("apertium", pair="eng-xyz", modes_dir=str(tmp_path))


@needs_apertium
def test_a_failing_sentence_alone_in_its_batch_is_reported(tmp_path):
    translator = get_translator("apertium", pair="eng-spa", timeout=1.0, batch_size=1)
    script = tmp_path / "fake.py"
    script.write_text(FAKE_PIPELINE)
    translator.process.script = f"exec {sys.executable} {script}"
    docs = [read_docs_one(text, [(0, 1, "PER")]) for text in ["Peter ok", "CRASH now", "Anna ok"]]
    assert [r.error for r in translator(docs)] == [None, "apertium died", None]
