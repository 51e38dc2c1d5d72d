"""Detokenisation, whitespace normalisation, target Docs and character splitting."""
import spacy
from spacy.tokens import Doc

from spacy_concner.pairs import PAIR_KEY
from spacy_concner.translate.text import detokenize, normalize_space, split_characters, target_doc, target_lang


def test_detokenize_follows_english_typography():
    words = ["He", "said", '"', "it", "'s", "(", "3.5", "%", ")", '"', "."]
    text = "".join(w + " " * s for w, s in zip(words, detokenize(words)))
    assert text == 'He said "it\'s (3.5%)".'


def test_normalize_space_moves_spans():
    text, spans = normalize_space("  La  UE  rehusa \n", [(6, 8, "ORG"), (9, 16, "X"), (4, 6, "Y")])
    assert text == "La UE rehusa"
    assert [text[s:e] for s, e, _ in spans] == ["UE", "rehusa"]  # whitespace-only span dropped


def test_target_doc_expands_spans_to_tokens_and_keeps_the_pair_key():
    doc = target_doc(spacy.blank("es"), "La UE rehusa.", [(3, 5, "ORG"), (7, 9, "X")], "k:1")
    assert [(e.text, e.label_) for e in doc.ents] == [("UE", "ORG"), ("rehusa", "X")]
    assert doc.user_data[PAIR_KEY] == "k:1"


def test_split_characters_spreads_labels():
    doc = Doc(spacy.blank("zh").vocab, words=["德国", "总理", "Merkel"], spaces=[False, False, False])
    doc.ents = [doc.char_span(0, 2, "LOC"), doc.char_span(4, 10, "PER")]
    doc.user_data[PAIR_KEY] = "k:2"
    chars = split_characters(doc)
    assert [t.text for t in chars] == list("德国总理Merkel")
    assert [t.ent_iob_ + "-" + t.ent_type_ for t in chars][:4] == ["B-LOC", "I-LOC", "O-", "O-"]
    assert [(e.text, e.label_) for e in chars.ents] == [("德国", "LOC"), ("Merkel", "PER")]
    assert chars.user_data[PAIR_KEY] == "k:2"


def test_target_lang():
    assert [target_lang(p) for p in ("eng-spa", "eng-zho", "eng-xyz")] == ["es", "zh", "xyz"]
