"""Code-switching with Apertium's words: the lexicon's rules with a fake Apertium (unknown
words, case, multiwords, labels), independence of chunking and order, the error for a
missing Apertium; a real sentence when Apertium is installed."""
import re

import pytest
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_concner.cli import app
from spacy_concner.pairs import PAIR_KEY
from spacy_concner.translate import BackendMissing, apertium, get_translator
from spacy_concner.translate.apertium_lexicon import ApertiumLexicon, one_unit
from spacy_concner.translate.cli import translate_docbin
from spacy_concner.translate.codeswitch import CodeSwitcher

from conftest import needs_apertium_mode, said, write_keyed_docbin

needs_apertium = needs_apertium_mode("eng-spa")
# A miniature of Apertium's dictionary: lowercase entries also read capitalised words,
# capitalised ones only themselves; entries with a space are multiwords
SPANISH = {"lives": "vive", "in": "en", "the": "el", "new": "nuevo", "house": "casa", "bath": "baño",
           "is": "es", "Germany": "Alemania", "New York": "Nueva York", "prime minister": "primer ministro"}


def entry(text):
    return text if text in SPANISH else text.lower() if text.lower() in SPANISH and text.lower().islower() else None


def fake_translation(text):
    """Apertium's answer: an entry, else word by word, *unknown; the first letter capitalised."""
    found = entry(text)
    if found:
        spanish = SPANISH[found]
    elif " " in text:
        spanish = " ".join(fake_translation(word).lower() if entry(word) else f"*{word}" for word in text.split())
    else:
        spanish = f"*{text}"
    return spanish[0].upper() + spanish[1:] + "[][\n]"


def fake_analysis(text):
    """The analyser's answer: one lexical unit for a multiword, else one a word."""
    units = [text] if " " in text and entry(text) else text.split()
    return " ".join(f"^{unit}/{unit}<n>$" for unit in units) + "[][\n]"


class FakeApertium:
    """Stands in for an Apertium pipeline; records what it is asked."""

    def __init__(self, answer):
        self.answer = answer
        self.asked = []

    def translate_each(self, texts):
        self.asked.append([re.sub(r"\\(.)", r"\1", text) for text in texts])
        return [self.answer(text) for text in self.asked[-1]]

    def stop(self):
        pass


def fake_switcher(ratio=1.0, seed=0):
    return CodeSwitcher("eng-spa", ApertiumLexicon(FakeApertium(fake_translation), FakeApertium(fake_analysis)),
                        ratio, seed)


def make_doc(text, ents=(), key="test:0"):
    doc = Doc(Vocab(), words=text.split())
    doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
    doc.user_data[PAIR_KEY] = key
    return doc


SENTENCE = ("Anna lives in the new house in New York , said the Prime Minister of Germany , Mr Bath 's son .",
            [(0, 1, "PER"), (7, 9, "LOC"), (15, 16, "LOC"), (18, 19, "PER")])


def test_known_words_switch_with_their_labels_and_unknown_ones_stay():
    switcher = fake_switcher()
    (result,) = switcher([make_doc(*SENTENCE)])
    # said, of, Mr, son, Anna: unknown; Bath: a name Apertium reads as the word bath;
    # New York: a multiword known with its case (new york -> nuevo *york)
    assert [t.text for t in result.doc] == ["Anna", "vive", "en", "el", "nuevo", "casa", "en", "Nueva", "York", ",",
                                           "said", "el", "primer", "ministro", "of", "Alemania", ",", "Mr", "Bath",
                                           "'s", "son", "."]
    assert [(e.text, e.label_) for e in result.doc.ents] == [
        ("Anna", "PER"), ("Nueva York", "LOC"), ("Alemania", "LOC"), ("Bath", "PER")]
    assert result.doc.user_data[PAIR_KEY] == "test:0"
    assert result.notes == {"tokens": 14, "tokens_switched": 9, "entity_tokens": 5, "entity_tokens_switched": 3}
    asked = [question for call in switcher.lexicon.translator.asked for question in call]
    assert "'s" not in asked and "Bath 's" not in asked  # alone, a clitic means nothing
    assert "Prime Minister" in asked and "the new" not in asked  # only the analyser's multiwords


def test_each_batch_asks_one_pipeline_only_what_is_new():
    switcher = fake_switcher()
    list(switcher([make_doc(*SENTENCE)]))
    translator, analyser = switcher.lexicon.translator, switcher.lexicon.analyser
    assert len(translator.asked) == len(analyser.asked) == 1
    list(switcher([make_doc(*SENTENCE, key="test:1"), make_doc("the new house")]))
    assert len(translator.asked) == len(analyser.asked) == 1


DOCS = [("New York is new", [(0, 2, "LOC")]), ("new york is new", []), ("House in Bath", [(0, 3, "ORG")]),
        ("House in Bath", []), ("Prime Minister Bath", [(0, 3, "PER")]), ("the prime minister in New York", [])]


def test_a_sentence_switches_alike_alone_in_any_order_and_chunk(tmp_path):
    docs = [make_doc(text, ents, key=f"s:{i}") for i, (text, ents) in enumerate(DOCS)]

    def texts(results):
        return [(r.doc.text, [(e.text, e.label_) for e in r.doc.ents]) for r in results]

    alone = [texts(fake_switcher(0.5, seed=1)([doc]))[0] for doc in docs]
    assert texts(fake_switcher(0.5, seed=1)(docs)) == alone
    assert texts(fake_switcher(0.5, seed=1)(docs[::-1])) == alone[::-1]
    switcher = fake_switcher(0.5, seed=1)
    assert texts(switcher(docs[3:])) + texts(switcher(docs[:3])) == alone[3:] + alone[:3]
    # the same through the translate command's chunks
    source = write_keyed_docbin(tmp_path / "en.spacy", [(text.split(), ents) for text, ents in DOCS])
    outputs = []
    for chunk_size in (1, 4):
        output = tmp_path / f"cs-{chunk_size}.spacy"
        translate_docbin(source, output, fake_switcher(0.5, seed=1), {}, None, chunk_size, tmp_path / "cs.json")
        outputs.append(output.read_bytes())
    assert outputs[0] == outputs[1]


def test_one_unit_is_a_single_lexical_unit_spelling_the_phrase():
    assert one_unit("New York", "^New York/New York<np><loc><sg>$[][\n]")
    assert not one_unit("New York", "^New/New<adj>$ ^York/York<np><loc><sg>$[][\n]")
    assert one_unit("AT$T", "^AT\\$T/AT\\$T<np>$")


def test_a_missing_apertium_mode_is_reported_as_the_apertium_translator_reports_it(tmp_path, monkeypatch):
    monkeypatch.setattr(apertium, "distribution_packages", lambda: ["apertium-eng-spa"])
    errors = []
    for name in ("apertium", "codeswitch"):
        with pytest.raises(BackendMissing) as caught:
            get_translator(name, pair="eng-spa", modes_dir=str(tmp_path))
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert errors[1] in ("Apertium is not installed: apt-get install apertium",
                         f"No Apertium mode 'eng-spa' in {tmp_path} (installed: none): "
                         "apt-get install apertium-eng-spa")


def test_the_cli_says_what_to_install_without_a_traceback(tmp_path, monkeypatch):
    source = write_keyed_docbin(tmp_path / "en.spacy", [(["Anna", "lives"], [(0, 1, "PER")])])
    monkeypatch.setenv("PATH", str(tmp_path))  # no Apertium on it
    args = ["translate", str(source), str(tmp_path / "cs.spacy"), "--translator", "codeswitch", "--pair", "eng-spa"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Apertium is not installed: apt-get install apertium" in said(result)


def test_the_lexicon_translator_sends_apertium_pairs_to_apertium():
    with pytest.raises(ValueError, match="No dictionaries for 'eng-spa'; known pairs: eng-deu, .* translates with "
                                         "--translator apertium"):
        get_translator("lexicon", pair="eng-spa")


@needs_apertium
def test_real_apertium_switches_words_multiwords_and_names_it_knows():
    docs = [make_doc("EU rejects German call to boycott British lamb .",
                     [(0, 1, "ORG"), (2, 3, "MISC"), (6, 7, "MISC")]),
            make_doc("Lehman analyst Blake Bath said the United States will take part in the fair in New York .",
                     [(0, 1, "ORG"), (2, 4, "PER"), (6, 8, "LOC"), (15, 17, "LOC")], key="test:1")]
    first, second = get_translator("codeswitch", pair="eng-spa", ratio=1.0)(docs)
    assert [(e.text, e.label_) for e in first.doc.ents] == [("UE", "ORG"), ("Alemán", "MISC"), ("Británico", "MISC")]
    assert [(e.text, e.label_) for e in second.doc.ents] == [
        ("Lehman", "ORG"), ("Blake Bath", "PER"), ("Estados Unidos", "LOC"), ("Nueva York", "LOC")]
    assert first.doc.text.startswith("UE rehusa Alemán llamada a boicot Británico cordero")
    assert " analista " in second.doc.text and " will " in second.doc.text  # Apertium gives nothing for will
