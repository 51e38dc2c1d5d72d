"""The `mcl_ner` component with configs/mcl_ner.cfg, a tiny BERT and the synthetic pairs:
labels, the loss and its terms, prediction (also past the grid's word cap), saving,
and `spacy train`."""
import numpy
import pytest
import spacy
from spacy.cli.train import train
from spacy.tokens import Doc
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.util import load_model_from_config

from spacy_concner.entity_pipe import entity_confidences
from spacy_concner.grid import MAX_WORDS, MISSING, cell_labels, windows
from spacy_concner.losses import RelationContrastiveLoss, sentence_contrast

from test_pipeline import CONFIGS, concner_config, tiny_overrides, training_examples


def mcl_config(tiny_bert_dir, paired_docbins, **overrides):
    return concner_config(tiny_bert_dir, paired_docbins, name="mcl_ner.cfg", **overrides)


@pytest.fixture(scope="module")
def nlp(tiny_bert_dir, paired_docbins):
    return init_nlp(mcl_config(tiny_bert_dir, paired_docbins))


def scores_and_loss(nlp, examples):
    """The model's training output on the Examples and get_loss of it."""
    pipe = nlp.get_pipe("mcl_ner")
    docs = [eg.predicted for eg in examples]
    nlp.get_pipe("transformer").set_annotations(docs, nlp.get_pipe("transformer").predict(docs))
    scores, _ = pipe.model.begin_update(docs)
    return pipe, scores, pipe.get_loss(examples, scores)


def test_labels_and_cell_labels(nlp):
    pipe = nlp.get_pipe("mcl_ner")
    assert pipe.labels == ("LOC", "PER")
    assert pipe.tags == ["None", "NNW", "THW-LOC", "THW-PER"]
    assert pipe.model.get_ref("output_layer").get_dim("nO") == 4


def test_gold_cells_of_an_example(nlp):
    pipe = nlp.get_pipe("mcl_ner")
    doc = Doc(nlp.vocab, words=["the", "mayor", "of", "New", "York", "City", "met", "Anna", "."])
    eg = Example.from_dict(doc, {"entities": ["O", "O", "O", "B-LOC", "I-LOC", "L-LOC", "O", "U-PER", "O"]})
    (cells,) = pipe._gold_cells(eg)
    grid = cells.reshape(9, 9)
    expected = numpy.zeros((9, 9), dtype=int)
    expected[3, 4] = expected[4, 5] = 1  # NNW
    expected[5, 3] = 2  # THW-LOC
    expected[7, 7] = 3  # THW-PER
    numpy.testing.assert_array_equal(grid, expected)
    unannotated = Example(doc, doc.copy())
    assert (pipe._gold_cells(unannotated)[0] == MISSING).all()


def test_loss_is_relation_loss_plus_weighted_contrasts(nlp):
    examples = training_examples(nlp)[:8]
    pipe = nlp.get_pipe("mcl_ner")
    pipe.loss.relation_contrast.rng = numpy.random.default_rng(3)  # draw known None cells
    _, (vectors, probs, projections), (loss, (d_vectors, d_scores, d_projections)) = scores_and_loss(nlp, examples)
    cells = [grid for eg in examples for grid in pipe._gold_cells(eg)]
    _, rel = pipe.loss.relation_loss(probs, cells)
    _, rc = RelationContrastiveLoss(seed=3)(projections, cells)
    lengths = [len(v) for v in vectors]
    pairs = [f"k{i // 2}" for i in range(8)]  # each source followed by its translation
    _, sem = sentence_contrast(pipe.loss.semantic_loss, numpy.concatenate(vectors), lengths, list(range(8)), pairs)
    assert rel > 0 and rc > 0 and sem > 0
    assert loss == pytest.approx(rel + 0.25 * rc + 0.25 * sem, rel=1e-5)
    assert len(d_scores) == len(probs) == len(projections) == len(d_projections) == 8
    assert all(numpy.abs(d).sum() > 0 for d in d_vectors + d_scores + d_projections)


def test_contrasts_left_out_with_zero_weights(tiny_bert_dir, paired_docbins):
    overrides = {"components.mcl_ner.lambda_rc": 0.0, "components.mcl_ner.lambda_sem": 0.0}
    nlp = init_nlp(mcl_config(tiny_bert_dir, paired_docbins, **overrides))
    examples = training_examples(nlp)[:4]
    pipe, (_, probs, _), (loss, (d_vectors, _, d_projections)) = scores_and_loss(nlp, examples)
    cells = [grid for eg in examples for grid in pipe._gold_cells(eg)]
    assert loss == pytest.approx(pipe.loss.relation_loss(probs, cells)[1])
    assert d_projections is None and not numpy.concatenate(d_vectors).any()


def test_training_learns_the_synthetic_entities(tiny_bert_dir, paired_docbins):
    from thinc.api import Adam

    nlp = init_nlp(mcl_config(tiny_bert_dir, paired_docbins))
    examples = training_examples(nlp)
    optimizer = Adam(0.003)
    losses = []
    for step in range(60):
        start = (step * 8) % len(examples)
        losses.append(nlp.update(examples[start : start + 8], sgd=optimizer)["mcl_ner"])
    assert numpy.isfinite(losses).all() and numpy.mean(losses[-6:]) < 0.5 * numpy.mean(losses[:6])
    docs = list(nlp.pipe(["Anna lives in Paris .", "", "yesterday Boris flew to Oslo ."]))
    found = [(ent.text, ent.label_) for doc in docs for ent in doc.ents]
    assert ("Paris", "LOC") in found and ("Boris", "PER") in found


def long_doc(nlp, n_words):
    words = (["Anna", "lives", "in", "Paris", "."] * (n_words // 5 + 1))[:n_words]
    return Doc(nlp.vocab, words=words)


def test_a_doc_longer_than_the_grid_cap_trains_and_predicts(nlp):
    n_words = 2 * MAX_WORDS + 17
    assert len(windows(n_words)) == 4
    doc = nlp(long_doc(nlp, n_words))
    pipe = nlp.get_pipe("mcl_ner")
    (grids,) = pipe.predict([doc])
    assert [len(g) for g in grids] == [MAX_WORDS * MAX_WORDS] * 4
    assert all(0 <= ent.start < ent.end <= n_words for ent in doc.ents)
    reference = long_doc(nlp, n_words)
    reference.ents = [reference.char_span(0, 4, label="PER")]
    empty = Doc(nlp.vocab, words=[])
    examples = [Example(long_doc(nlp, n_words), reference), Example(empty, empty.copy())]
    losses = nlp.update(examples + training_examples(nlp)[:2], sgd=nlp.create_optimizer())
    assert numpy.isfinite(losses["mcl_ner"]) and losses["mcl_ner"] > 0
    assert nlp.update([examples[1]])["mcl_ner"] == 0.0  # only an empty Doc: nothing to learn


def test_serialization_round_trip(nlp, tmp_path):
    texts = ["Anna lives in Paris .", "the mayor of Lima met Farid ."]
    pipe = nlp.get_pipe("mcl_ner")
    expected = [pipe.predict([nlp.make_doc(t)])[0][0] for t in texts]
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    from_bytes = load_model_from_config(nlp.config).from_bytes(nlp.to_bytes())
    for other in (loaded, from_bytes):
        assert other.get_pipe("mcl_ner").labels == pipe.labels
        for text, probs in zip(texts, expected):
            numpy.testing.assert_allclose(other.get_pipe("mcl_ner").predict([other.make_doc(text)])[0][0], probs, rtol=1e-5)


def test_spacy_train_then_load_predicts_entities(tiny_bert_dir, paired_docbins, tmp_path):
    overrides = {**tiny_overrides(tiny_bert_dir, paired_docbins), "training.max_steps": 40,
                 "training.eval_frequency": 20, "training.optimizer.learn_rate.initial_rate": 0.003,
                 "training.batcher.size": 8}
    overrides.pop("training.optimizer.learn_rate")
    train(CONFIGS / "mcl_ner.cfg", tmp_path, overrides=overrides)
    nlp = spacy.load(tmp_path / "model-last")
    assert nlp.pipe_names == ["transformer", "mcl_ner"]
    docs = list(nlp.pipe(["Anna lives in Paris .", "the mayor of Quito met Elena ."]))
    assert sum(len(doc.ents) for doc in docs) > 0
    assert all(ent.label_ in ("LOC", "PER") for doc in docs for ent in doc.ents)


def cell_confidences(pipe, doc):
    """Each entity's lowest probability of the labels of the cells it is decoded from,
    its THW cell and the NNW links between its words, read from the component's grid
    (a sentence of at most MAX_WORDS words: one grid)."""
    if not doc.ents:
        return []
    (grid,) = pipe.predict([doc])[0]
    grid = pipe.model.ops.to_numpy(grid).reshape(len(doc), len(doc), -1)
    nnw = pipe.tags.index("NNW")
    return [
        min([grid[ent.end - 1, ent.start, pipe.tags.index("THW-" + ent.label_)]]
            + [grid[i, i + 1, nnw] for i in range(ent.start, ent.end - 1)])
        for ent in doc.ents
    ]


def test_a_multi_word_entity_scores_its_least_likely_cell(nlp):
    """set_annotations on a grid made by hand: "New York City" as LOC, its THW cell at
    0.9, its NNW links at 0.8 and 0.7."""
    pipe = nlp.get_pipe("mcl_ner")  # cell labels None, NNW, THW-LOC, THW-PER
    doc = Doc(nlp.vocab, words=["in", "New", "York", "City"])
    labels = cell_labels(4, [(1, 4, "LOC")], pipe.labels)
    probs = numpy.full((4, 4, 4), 0.02)
    numpy.put_along_axis(probs, labels[..., None], 0.94, axis=2)
    probs[3, 1, 2], probs[1, 2, 1], probs[2, 3, 1] = 0.9, 0.8, 0.7
    pipe.set_annotations([doc], [[probs.reshape(16, 4).astype("float32")]])
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(1, 4, "LOC")]
    assert entity_confidences(doc) == [pytest.approx(0.7)]
