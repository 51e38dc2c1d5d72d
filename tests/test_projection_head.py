"""spacy_concner.TokenClassifier.v3: v2 with an optional projection head whose output
the contrastive losses see, while the softmax layer classifies the token vectors."""
import numpy
import pytest
import spacy
from spacy.cli.train import train
from spacy.training.initialize import init_nlp
from spacy.util import registry
from thinc.api import SGD, fix_random_seed, noop

from spacy_concner.losses import (
    ConcnerLoss,
    KLDistillationLoss,
    LabelContrastiveLoss,
    TranslationContrastiveLoss,
)

import torch_reference as reference
from test_losses import assert_docs_match, assert_matches, random_batch
from test_pipeline import CONFIGS, concner_config, tiny_overrides, training_examples

N_TAGS = 5
WITH_HEAD = {"components.concner.model.@architectures": "spacy_concner.TokenClassifier.v3",
             "components.concner.model.projection_width": 16}


def initialized(version, vectors, **settings):
    """A token classifier on token vectors given directly (tok2vec: noop), initialised
    from a fixed seed."""
    fix_random_seed(0)
    build = registry.architectures.get(f"spacy_concner.TokenClassifier.{version}")
    model = build(noop(), nO=N_TAGS, **settings)
    model.initialize(X=vectors)
    return model


def token_vectors(seed, lengths, width=8):
    rng = numpy.random.default_rng(seed)
    return [rng.normal(size=(n, width)).astype("float32") for n in lengths]


def head_layers(model):
    """{suffix: layer} of the softmax layer ("": W, b) and the head (W1, b1, W2, b2)."""
    linear = next(node for node in model.walk() if node.name == "linear")
    return {"": model.get_ref("output_layer"), "1": model.layers[1].get_ref("projection_hidden"), "2": linear}


def parameters(model, method="get_param"):
    """{W, b, W1, b1, W2, b2: the layer's get_param or get_grad of "W" or "b"}"""
    layers = head_layers(model).items()
    return {name + suffix: getattr(layer, method)(name) for suffix, layer in layers for name in "Wb"}


def test_v3_without_a_head_is_v2():
    vectors = token_vectors(0, [5, 0, 3])
    rng = numpy.random.default_rng(1)
    d_vectors = [rng.normal(size=v.shape).astype("float32") for v in vectors]
    d_logits = [rng.normal(size=(len(v), N_TAGS)).astype("float32") for v in vectors]
    v2 = initialized("v2", vectors)
    v3 = initialized("v3", vectors, projection_width=0)
    assert v3.to_bytes() == v2.to_bytes()
    (outputs_2, backprop_2), (outputs_3, backprop_3) = v2.begin_update(vectors), v3.begin_update(vectors)
    for ours, theirs in zip(outputs_3 + v3.predict(vectors), outputs_2 + v2.predict(vectors)):
        assert all(numpy.array_equal(a, b) for a, b in zip(ours, theirs))
    gradients_2, gradients_3 = backprop_2((d_vectors, d_logits)), backprop_3((d_vectors, d_logits))
    assert all(numpy.array_equal(a, b) for a, b in zip(gradients_3, gradients_2))


def test_the_head_projects_in_training_only():
    """spacy-transformers gives an empty Doc a 0 x 0 array."""
    vectors = token_vectors(2, [5, 0, 3])
    vectors[1] = numpy.zeros((0, 0), dtype="float32")
    model = initialized("v3", vectors, projection_width=16)
    (projections, probs), _ = model.begin_update(vectors)
    assert [z.shape for z in projections] == [(5, 16), (0, 16), (3, 16)]
    assert [p.shape for p in probs] == [(5, N_TAGS), (0, N_TAGS), (3, N_TAGS)]
    predicted_vectors, predicted = model.predict(vectors)
    assert predicted_vectors is None
    assert all(numpy.array_equal(a, b) for a, b in zip(predicted, probs))
    assert head_layers(model)["1"].get_dim("nO") == 8  # the hidden layer: as wide as h


@pytest.mark.parametrize(
    "seed,lengths,kinds",
    [
        (0, [5, 6, 3, 4, 2], ["gold"] * 5),
        (1, [4, 0, 7, 3, 3, 5], ["gold", "gold", "gold", "soft", "soft", "gold"]),
    ],
)
def test_gradients_through_the_head_match_autograd(seed, lengths, kinds):
    """d(CE + LCL + TCL + KD)/dh and the gradients of the softmax layer's and the head's
    parameters, against PyTorch autograd through the head's equations."""
    _, _, targets = random_batch(seed, lengths, kinds, n_tags=N_TAGS)
    vectors = token_vectors(seed, lengths)
    model = initialized("v3", vectors, projection_width=6)
    (projections, probs), backprop = model.begin_update(vectors)
    loss = ConcnerLoss(0.5, 0.25, LabelContrastiveLoss(), TranslationContrastiveLoss(), KLDistillationLoss())
    d_scores, value = loss(projections, probs, targets)
    d_vectors = backprop(d_scores)
    expected_value, expected_d_vectors, expected_d_params = reference.concner_loss_through_heads(
        vectors, parameters(model),
        targets.gold, targets.soft, targets.keys, alpha=0.5, beta=0.25,
    )
    assert_matches(value, expected_value)
    assert_docs_match(d_vectors, expected_d_vectors)
    for name, grad in parameters(model, "get_grad").items():
        assert numpy.abs(grad).max() > 0, name
        assert_matches(grad, expected_d_params[name])


def test_finish_update_moves_the_head_at_the_scaled_learn_rate(tiny_bert_dir, paired_docbins):
    """With plain SGD from the same start, lr_scale = 10 moves the head 10 times as far."""

    def head_steps(lr_scale):
        overrides = {**WITH_HEAD, "components.concner.lr_scale": lr_scale}
        nlp = init_nlp(concner_config(tiny_bert_dir, paired_docbins, **overrides))
        model = nlp.get_pipe("concner").model
        before = {name: weights.copy() for name, weights in parameters(model).items()}
        nlp.update(training_examples(nlp)[:8], sgd=SGD(0.1))
        after = parameters(model)
        return {name: after[name] - before[name] for name in ("W1", "b1", "W2", "b2")}

    steps_1, steps_10 = head_steps(1.0), head_steps(10.0)
    for name, step in steps_1.items():
        assert numpy.abs(step).max() > 0, name
        numpy.testing.assert_allclose(steps_10[name], 10 * step, rtol=1e-4, atol=1e-6)


def test_spacy_train_with_a_projection_head(tiny_bert_dir, paired_docbins, tmp_path):
    overrides = {**tiny_overrides(tiny_bert_dir, paired_docbins), **WITH_HEAD,
                 "training.max_steps": 4, "training.eval_frequency": 2}
    train(CONFIGS / "concner.cfg", tmp_path, overrides=overrides)
    nlp = spacy.load(tmp_path / "model-last")
    assert head_layers(nlp.get_pipe("concner").model)["2"].get_dim("nO") == 16
    assert len(nlp("yesterday Elena flew to Quito .")) == 6


def test_serialization_round_trip_keeps_the_head(tiny_bert_dir, paired_docbins, tmp_path):
    nlp = init_nlp(concner_config(tiny_bert_dir, paired_docbins, **WITH_HEAD))
    examples = training_examples(nlp)[:8]
    nlp.update(examples, sgd=SGD(0.1))
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    docs = [eg.predicted for eg in examples]
    outputs = [other.get_pipe("concner").model.begin_update(list(other.pipe(docs)))[0] for other in (nlp, loaded)]
    for ours, theirs in zip(*outputs):
        assert_docs_match(ours, theirs)
    weights = [parameters(other.get_pipe("concner").model) for other in (nlp, loaded)]
    assert all(numpy.array_equal(weights[0][name], weights[1][name]) for name in weights[0])
