"""spacy_concner.PairGridClassifier.v1: the grid head's output and backward pass against
the PyTorch version of its equations (tests/torch_reference.py), grid by grid and over
the windows of a sentence longer than the grid's word cap."""
import numpy
import pytest
from spacy.util import registry
from thinc.api import Model, NumpyOps

import spacy_concner.grid as grid
from spacy_concner.pair_grid import GridScores

import torch_reference as reference
from test_losses import assert_matches

WIDTHS = dict(biaffine_width=5, relation_width=4, distance_width=3, projection_width=3)


def grid_heads(n_labels=4, width=6, seed=0):
    """The head part of an initialised classifier (tok2vec left out) with random
    parameters."""
    numpy.random.seed(seed)
    build = registry.architectures.get("spacy_concner.PairGridClassifier.v1")
    model = build(tok2vec=Model("no_tok2vec", lambda model, X, is_train: (X, lambda dY: dY)), nO=n_labels, **WIDTHS)
    heads = model.layers[1]
    heads.initialize(X=[numpy.zeros((3, width), dtype="float32")])
    rng = numpy.random.default_rng(seed)
    for node in heads.walk():
        for name in node.param_names:
            node.set_param(name, rng.normal(0, 0.5, node.get_param(name).shape).astype("float32"))
    return heads


def by_name(heads, read):
    """read(layer, name) of each parameter of the head, by the reference's names."""
    head_u, head_v, pairs, projection = heads.layers
    gelu_q, linear_q = projection.layers
    layers = {"u": head_u, "v": head_v, "q1": gelu_q, "q2": linear_q}
    named = {f"{p}_{key}": read(layer, p) for key, layer in layers.items() for p in ("W", "b")}
    named.update({name: read(pairs, name) for name in ("E", "W_r", "b_r", "W_o", "b_o", "U")})
    return named


def check_against_reference(lengths, seed):
    rng = numpy.random.default_rng(seed)
    heads = grid_heads(seed=seed)
    vectors = [rng.normal(size=(n, 6)).astype("float32") for n in lengths]
    (out_vectors, probs, projections), backprop = heads(vectors, is_train=True)
    assert out_vectors == vectors
    spans = [(i, start, end) for i, n in enumerate(lengths) for start, end in grid.windows(n)]
    assert len(probs) == len(projections) == len(spans)
    d_scores = [rng.normal(size=p.shape).astype("float32") for p in probs]
    d_projections = [rng.normal(size=q.shape).astype("float32") for q in projections]
    d_vectors_in = [rng.normal(size=v.shape).astype("float32") for v in vectors]
    d_vectors = backprop(GridScores(d_vectors_in, d_scores, d_projections))
    params = by_name(heads, Model.get_param)
    expected_d_vectors = [d.copy() for d in d_vectors_in]
    expected_grads = {name: numpy.zeros_like(value) for name, value in params.items()}
    for (doc, start, end), p, d_s, d_q in zip(spans, probs, d_scores, d_projections):
        expected_probs, grads = reference.pair_grid(vectors[doc][start:end], params, d_s, d_q)
        assert_matches(p, expected_probs)
        expected_d_vectors[doc][start:end] += grads.pop("h")
        for name, g in grads.items():
            expected_grads[name] += g
    for actual, expected in zip(d_vectors, expected_d_vectors):
        assert_matches(actual, expected)
    for name, actual in by_name(heads, Model.get_grad).items():
        assert_matches(actual, expected_grads[name])


@pytest.mark.parametrize("seed,lengths", [(0, [4]), (1, [3, 1, 5]), (2, [2, 0, 6])])
def test_grid_head_matches_reference(seed, lengths):
    """Probabilities, and the gradients w.r.t. the word vectors and every parameter."""
    check_against_reference(lengths, seed)


def test_windows_of_a_long_sentence_match_reference(monkeypatch):
    """Words in two overlapping windows get the sum of both windows' gradients."""
    monkeypatch.setattr(grid, "MAX_WORDS", 6)
    monkeypatch.setattr(grid, "WINDOW_STRIDE", 3)
    assert grid.windows(10) == [(0, 6), (3, 9), (4, 10)]
    check_against_reference([10, 3], seed=3)


def test_prediction_has_no_projections_and_empty_docs_have_no_grid():
    heads = grid_heads()
    vectors = [numpy.ones((3, 6), dtype="float32"), NumpyOps().alloc2f(0, 0), numpy.ones((2, 6), dtype="float32")]
    out_vectors, probs, projections = heads.predict(vectors)
    assert projections is None and [len(p) for p in probs] == [9, 4]
    assert out_vectors[1].shape == (0, 6)
    numpy.testing.assert_allclose(numpy.concatenate(probs).sum(axis=1), 1.0)
