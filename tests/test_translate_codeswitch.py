"""The code-switch translator: seeded switching of dictionary words and phrases, labels
carried onto the replacements, independence of chunking, the translate command's report."""
import json

import pytest
from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_concner.cli import app
from spacy_concner.pairs import PAIR_KEY
from spacy_concner.translate import get_translator, translate_docs
from spacy_concner.translate.cli import translate_docbin
from spacy_concner.translate.codeswitch import CodeSwitcher
from spacy_concner.translate.lexicon import Lexicon

from conftest import said, write_freedict, write_keyed_docbin

ENTRIES = {
    "house": "house /hˈaʊs/\nHaus <neut>\n",
    "new": "new /njˈuː/\nneu <adj>\n",
    "lives": "lives /lˈaɪvz/\nlebt <v>\n",
    "in": "in /ˈɪn/\nin <prp>\n",
    "police station": "police station /pəlˈiːs stˈeɪʃən/\nPolizeiwache <fem>\n",
    "Germany": "Germany /dʒˈɜːməni/\nDeutschland <neut> [geogr.]\n",
    "United States": "United States /juːnˈaɪtɪd stˈeɪts/\nVereinigte Staaten <pl> [geogr.]\n",
}


@pytest.fixture
def switcher(tmp_path):
    """A code-switch factory over ENTRIES as freedict-eng-deu."""
    dictd_dir = write_freedict(tmp_path, "freedict-eng-deu", ENTRIES)

    def make(**settings):
        return get_translator("codeswitch", pair="eng-deu", cache_dir=str(tmp_path / "cache"),
                              dictd_dir=str(dictd_dir), **settings)

    return make


def make_doc(text, ents=(), key="test:0"):
    doc = Doc(Vocab(), words=text.split())
    doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
    doc.user_data[PAIR_KEY] = key
    return doc


def switched(translator, doc):
    (result,) = translator([doc])
    return [t.text for t in result.doc], [(e.text, e.label_) for e in result.doc.ents], result


SENTENCE = ("Anna lives in the new house near the police station of the United States Army in Germany",
            [(0, 1, "PER"), (12, 15, "ORG"), (16, 17, "LOC")])


def test_ratio_one_switches_every_dictionary_unit_as_the_lexicon_translates(switcher, tmp_path):
    words, ents, result = switched(switcher(ratio=1.0), make_doc(*SENTENCE))
    assert words == ["Anna", "lebt", "in", "the", "neu", "Haus", "near", "the", "Polizeiwache", "of", "the",
                     "Vereinigte", "Staaten", "Army", "in", "Deutschland"]
    # the phrase inside the ORG entity became two words, both in it: one contiguous span
    assert ents == [("Anna", "PER"), ("Vereinigte Staaten Army", "ORG"), ("Deutschland", "LOC")]
    assert [t.ent_iob_ for t in result.doc[11:14]] == ["B", "I", "I"]
    assert result.doc.user_data[PAIR_KEY] == "test:0"
    lexicon = get_translator("lexicon", pair="eng-deu", cache_dir=str(tmp_path / "cache"), dictd_dir=str(tmp_path))
    (translation,) = lexicon([make_doc(*SENTENCE)])
    assert words == [t.text for t in translation.doc]
    assert result.notes == {"tokens": 12, "tokens_switched": 7, "entity_tokens": 5, "entity_tokens_switched": 3}


def test_ratio_zero_keeps_the_source(switcher):
    doc = make_doc(*SENTENCE)
    words, ents, result = switched(switcher(ratio=0.0), doc)
    assert words == [t.text for t in doc] and ents == [(e.text, e.label_) for e in doc.ents]
    assert result.notes["tokens_switched"] == result.notes["entity_tokens_switched"] == 0


def test_about_ratio_of_the_units_switch_and_a_sentence_switches_alike_wherever_it_is(switcher):
    translator = switcher(ratio=0.3, seed=7)
    docs = [make_doc("new house in Germany", [(3, 4, "LOC")], key=f"s:{i}") for i in range(400)]
    results = list(translator(docs))
    share = sum(r.notes["tokens_switched"] + r.notes["entity_tokens_switched"] for r in results) / (4 * len(docs))
    assert 0.25 < share < 0.35
    assert len({r.doc.text for r in results}) == 8  # each unit switches on its own ("in" is "in")
    # the same sentence alone, later, or by a new translator: the same draws
    again = switcher(ratio=0.3, seed=7)
    assert [r.doc.text for r in again(docs[::-1])] == [r.doc.text for r in results][::-1]
    assert [r.doc.text for r in switcher(ratio=0.3, seed=8)(docs)] != [r.doc.text for r in results]


def test_unit_rules_of_the_lexicon_hold(switcher):
    """Entity words switch only with their exact case; phrases do not cross entity bounds."""
    words, ents, _ = switched(switcher(ratio=1.0), make_doc("House police station", [(0, 2, "ORG")]))
    assert words == ["House", "police", "station"]
    assert ents == [("House police", "ORG")]


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_ratio_outside_zero_to_one_is_refused(switcher, ratio):
    with pytest.raises(ValueError, match="ratio must be in"):
        switcher(ratio=ratio)


def test_chinese_targets_keep_english_spacing_and_split_into_characters():
    translator = CodeSwitcher("eng-zho", Lexicon({"house": "房子"}, {"house": "房子", "new": "新"}), ratio=1.0)
    (result,) = translate_docs(translator, [make_doc("a new house .")])
    assert result.doc.text == "a 新 房子." and [t.text for t in result.doc] == ["a", "新", "房", "子", "."]


@pytest.fixture
def source(tmp_path):
    words = ["Anna", "lives", "in", "the", "new", "house", "in", "Germany"]
    return write_keyed_docbin(tmp_path / "en.spacy", [(words, [(0, 1, "PER"), (7, 8, "LOC")])] * 12)


def read_texts(path):
    return [(doc.text, doc.user_data[PAIR_KEY]) for doc in DocBin().from_disk(path).get_docs(Vocab())]


def test_output_does_not_depend_on_the_chunk_size(switcher, source, tmp_path):
    outputs = []
    for chunk_size in (5, 12):
        output = tmp_path / f"cs-{chunk_size}.spacy"
        translate_docbin(source, output, switcher(ratio=0.5), {}, None, chunk_size, tmp_path / f"cs-{chunk_size}.json")
        outputs.append(read_texts(output))
    assert outputs[0] == outputs[1] and len({text for text, _ in outputs[0]}) > 1  # keys seed the draws


def test_cli_reports_the_share_of_words_switched_and_entity_survival(source, tmp_path, monkeypatch):
    tiny = Lexicon.load("eng-deu", tmp_path / "cache", write_freedict(tmp_path, "freedict-eng-deu", ENTRIES))
    monkeypatch.setattr(Lexicon, "load", classmethod(lambda cls, *args: tiny))
    output = tmp_path / "de-cs.spacy"
    args = ["translate", str(source), str(output), "--translator", "codeswitch", "--pair", "eng-deu",
            "--ratio", "1.0", "--seed", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(output.with_suffix(".json").read_text())
    assert report["config"] == {"translator": "codeswitch", "pair": "eng-deu", "ratio": 1.0, "seed": 3}
    # lives, in, new, house, in of the words (the: unknown); Germany of the entity words (Anna: unknown)
    assert report["note_shares"] == {"entity_tokens_switched": 0.5, "tokens_switched": round(5 / 6, 4)}
    assert report["entity_survival"]["total"] == 1.0
    assert "tokens_switched 83.3%" in said(result)
    assert read_texts(output)[0] == ("Anna lebt in the neu Haus in Deutschland", "s:0")
