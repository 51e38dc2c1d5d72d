"""Tag decoding: Viterbi over valid IOB2 sequences against brute force, greedy as the
per-token argmax, the components' setting and evaluate's --decoding."""
import itertools
import json

import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training.initialize import init_nlp
from typer.testing import CliRunner

from spacy_concner.cli import app
from spacy_concner.decoding import decode_tags, pipeline_decoding
from spacy_concner.entity_pipe import iob2_to_spans

from test_pipeline import concner_config

TAGS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def valid(tags):
    """No I-X but after B-X or I-X."""
    return all(not tag.startswith("I-") or (i and tags[i - 1] != "O" and tags[i - 1][2:] == tag[2:])
               for i, tag in enumerate(tags))


def brute_force(probs):
    """The valid sequence of the largest product of probabilities, by enumeration."""
    best = max((seq for seq in itertools.product(range(len(TAGS)), repeat=len(probs))
                if valid([TAGS[i] for i in seq])),
               key=lambda seq: sum(numpy.log(probs[j, i]) for j, i in enumerate(seq)))
    return [TAGS[i] for i in best]


@pytest.mark.parametrize("n_tokens", [1, 2, 3, 5])
def test_viterbi_finds_the_most_likely_valid_sequence(n_tokens):
    rng = numpy.random.default_rng(n_tokens)
    for _ in range(20):
        probs = rng.dirichlet(numpy.full(len(TAGS), 0.5), size=n_tokens)
        tags, scores = decode_tags(probs, TAGS, "viterbi")
        assert tags == brute_force(probs)
        assert valid(tags)
        assert scores == pytest.approx([probs[j, TAGS.index(t)] for j, t in enumerate(tags)])


def test_greedy_is_each_tokens_most_likely_tag():
    probs = numpy.random.default_rng(0).dirichlet(numpy.ones(len(TAGS)), size=6)
    tags, scores = decode_tags(probs, TAGS, "greedy")
    assert tags == [TAGS[i] for i in probs.argmax(axis=1)]
    assert scores == pytest.approx(probs.max(axis=1).tolist())


def test_a_type_flip_inside_a_name_is_one_entity_with_viterbi():
    """Regression: "Vlaams Blok" tagged B-LOC, I-ORG token by token fell apart into two
    entities (greedy); the most likely valid sequence is B-ORG, I-ORG."""
    probs = numpy.array([[0.1, 0.5, 0.0, 0.4, 0.0], [0.3, 0.0, 0.1, 0.0, 0.6]])
    assert iob2_to_spans(decode_tags(probs, TAGS, "greedy")[0]) == [(0, 1, "LOC"), (1, 2, "ORG")]
    assert iob2_to_spans(decode_tags(probs, TAGS, "viterbi")[0]) == [(0, 2, "ORG")]


def test_zero_probabilities_and_empty_docs():
    probs = numpy.array([[0.0, 0.0, 1.0, 0.0, 0.0]])  # only I-LOC, which cannot start
    assert decode_tags(probs, TAGS, "viterbi")[0] != ["I-LOC"]
    assert decode_tags(numpy.zeros((0, len(TAGS))), TAGS, "viterbi") == ([], [])


def concner_nlp(decoding=None):
    nlp = spacy.blank("en")
    config = {} if decoding is None else {"decoding": decoding}
    concner = nlp.add_pipe("concner", config=config)
    for label in ("LOC", "ORG"):
        concner.add_label(label)
    return nlp, concner


def test_the_component_decodes_with_viterbi_by_default_and_keeps_its_setting(tmp_path):
    nlp, concner = concner_nlp()
    assert concner.decoding == "viterbi"
    doc = Doc(nlp.vocab, words=["Vlaams", "Blok"])
    probs = numpy.array([[0.1, 0.5, 0.0, 0.4, 0.0], [0.3, 0.0, 0.1, 0.0, 0.6]], dtype="float32")
    assert concner.tags == TAGS
    concner.set_annotations([doc], [probs])
    assert [(e.text, e.label_) for e in doc.ents] == [("Vlaams Blok", "ORG")]
    greedy, _ = concner_nlp("greedy")
    greedy.get_pipe("concner").set_annotations([doc], [probs])
    assert [(e.text, e.label_) for e in doc.ents] == [("Vlaams", "LOC"), ("Blok", "ORG")]
    assert greedy.config["components"]["concner"]["decoding"] == "greedy"
    with pytest.raises(ValueError, match="decoding must be one of viterbi, greedy, not 'best'"):
        concner_nlp("best")


def test_pipeline_decoding_sets_every_concner_component():
    nlp, concner = concner_nlp()
    assert pipeline_decoding(nlp) == "viterbi"
    assert pipeline_decoding(nlp, "greedy") == "greedy" and concner.decoding == "greedy"
    with pytest.raises(ValueError, match="no component of the pipeline"):
        pipeline_decoding(spacy.blank("en"), "greedy")
    assert pipeline_decoding(spacy.blank("en")) is None


def test_evaluate_records_the_decoding_and_resumes_only_with_the_same(tiny_bert_dir, paired_docbins, tmp_path):
    nlp = init_nlp(concner_config(tiny_bert_dir, paired_docbins))
    model = tmp_path / "model"
    nlp.to_disk(model)
    gold = Doc(nlp.vocab, words=["Vlaams", "Blok", "won"], ents=["B-ORG", "I-ORG", "O"])
    test = tmp_path / "test.spacy"
    spacy.tokens.DocBin(docs=[gold]).to_disk(test)
    out = tmp_path / "out"

    def run(*extra):
        result = CliRunner().invoke(app, ["evaluate", str(model), f"nl={test}", "--output", str(out), *extra])
        assert result.exit_code == 0, result.output
        return "kept from" in result.output, json.loads((out / "model.json").read_text())[0]["decoding"]

    assert run() == (False, "viterbi")
    assert run("--decoding", "viterbi") == (True, "viterbi")
    assert run("--decoding", "greedy") == (False, "greedy")
    result = CliRunner().invoke(app, ["evaluate", str(model), f"nl={test}", "--decoding", "best"])
    assert result.exit_code == 1 and "decoding must be one of" in result.output


def test_an_unknown_decoding_set_after_construction_is_refused():
    nlp, concner = concner_nlp()
    concner.decoding = "best"
    doc = Doc(nlp.vocab, words=["Vlaams", "Blok"])
    with pytest.raises(ValueError, match="decoding must be one of viterbi, greedy, not 'best'"):
        concner.set_annotations([doc], [numpy.full((2, len(TAGS)), 0.2, dtype="float32")])
