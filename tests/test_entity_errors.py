"""benchmarks/entity_errors.py counts exact-span matches, false and missed spans per type."""
import importlib.util
from pathlib import Path

import pytest
import spacy
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, Span
from spacy.training import Example

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("entity_errors", ROOT / "benchmarks" / "entity_errors.py")
entity_errors = importlib.util.module_from_spec(spec)
spec.loader.exec_module(entity_errors)

WORDS = "los españoles viven en La Coruña y en Madrid".split()


def doc(vocab, *ents):
    d = Doc(vocab, words=WORDS)
    d.ents = [Span(d, start, end, label) for start, end, label in ents]
    return d


def test_false_missed_and_scores_per_type_agree_with_spacy():
    vocab = spacy.blank("es").vocab
    gold = [doc(vocab, (4, 6, "LOC"), (8, 9, "LOC")), doc(vocab, (8, 9, "LOC"))]
    pred = [doc(vocab, (1, 2, "MISC"), (4, 5, "LOC"), (8, 9, "LOC")), doc(vocab, (8, 9, "LOC"))]
    errors = entity_errors.entity_errors(pred, gold)
    assert errors["MISC"].false == {"españoles": 1} and not errors["MISC"].missed
    assert errors["LOC"].correct == 2 and errors["LOC"].false == {"La": 1}
    assert errors["LOC"].missed == {"La Coruña": 1}
    assert errors["LOC"].false_lengths == {1: 1} and errors["ALL"].false_lengths == {1: 2}
    spacy_scores = get_ner_prf([Example(p, g) for p, g in zip(pred, gold)])
    assert errors["ALL"].scores()["f1"] == round(100 * spacy_scores["ents_f"], 2)
    assert errors["LOC"].scores()["precision"] == round(100 * spacy_scores["ents_per_type"]["LOC"]["p"], 2)
    assert errors["MISC"].scores() == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "predicted": 1, "reference": 0}


def test_sentences_with_a_named_reference_entity_are_left_out():
    vocab = spacy.blank("es").vocab
    gold = [doc(vocab, (4, 6, "LOC"), (8, 9, "LOC")), doc(vocab, (8, 9, "LOC"))]
    pred = [doc(vocab, (4, 5, "LOC")), doc(vocab)]
    assert entity_errors.without_names(pred, gold, ["La Coruña"]) == [(pred[1], gold[1])]
    assert entity_errors.without_names(pred, gold, ["La"]) == list(zip(pred, gold))  # a predicted span is no reason
    assert entity_errors.without_names(pred, gold, []) == list(zip(pred, gold))


def test_predict_sets_and_reports_the_decoding(tiny_bert_dir, paired_docbins, tmp_path):
    from spacy.training.initialize import init_nlp

    from conftest import write_ruler_pipeline
    from test_pipeline import concner_config

    model = tmp_path / "model"
    init_nlp(concner_config(tiny_bert_dir, paired_docbins)).to_disk(model)
    docs = [doc(spacy.blank("es").vocab, (8, 9, "LOC"))]
    predicted, used = entity_errors.predict(model, docs, "greedy")
    assert used == "greedy" and [t.text for t in predicted[0]] == WORDS
    assert entity_errors.predict(model, docs)[1] == "viterbi"  # the config's own
    ruler = write_ruler_pipeline(tmp_path / "ruler", "es", [{"label": "LOC", "pattern": "Madrid"}])
    assert [e.text for e in entity_errors.predict(ruler, docs)[0][0].ents] == ["Madrid"]
    assert entity_errors.predict(ruler, docs)[1] is None
    with pytest.raises(ValueError, match="no component of the pipeline"):
        entity_errors.predict(ruler, docs, "viterbi")
