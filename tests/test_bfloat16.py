"""spacy_concner.TransformerModel.v3 with bfloat16 = true: the encoder runs under torch's
CPU bfloat16 autocast in training and prediction, its weights and gradients float32; v2
is v3 without it."""
import warnings
from inspect import signature

import numpy
import pytest
import spacy
import torch
from spacy.util import registry

from spacy_concner import encoder_forward

from conftest import tagged_examples, tagger_on_transformer

SENTENCES = ["anna lives in paris .", "boris flew to lagos yesterday .", "oslo ."]
needs_bf16 = pytest.mark.skipif(
    not encoder_forward.bfloat16_supported(), reason="no oneDNN bfloat16 kernels for this CPU"
)


def make_nlp(name, bfloat16: bool, architecture: str = "spacy_concner.TransformerModel.v3", **settings):
    if architecture.endswith("v3"):
        settings["bfloat16"] = bfloat16
    return tagger_on_transformer(architecture, name=str(name), frozen_layers=1, **settings)


def autocast_states(nlp) -> list:
    """Whether CPU autocast was on in each forward of the encoder's last layer, and the
    dtype of that layer's query projection output."""
    seen = []
    layer = nlp.get_pipe("transformer").model.transformer.encoder.layer[-1]
    layer.attention.self.query.register_forward_hook(
        lambda module, args, output: seen.append((torch.is_autocast_enabled("cpu"), output.dtype))
    )
    return seen


def hidden_states(nlp, texts):
    return [doc._.trf_data.model_output.last_hidden_state for doc in nlp.pipe(texts)]


def test_v2_is_v3_without_bfloat16(tiny_bert_dir):
    v2 = set(signature(registry.architectures.get("spacy_concner.TransformerModel.v2")).parameters)
    v3 = set(signature(registry.architectures.get("spacy_concner.TransformerModel.v3")).parameters)
    assert v3 - v2 == {"bfloat16"}
    outputs = []
    for architecture in ("spacy_concner.TransformerModel.v2", "spacy_concner.TransformerModel.v3"):
        nlp = make_nlp(tiny_bert_dir, False, architecture)
        nlp.initialize(lambda: tagged_examples(nlp, SENTENCES))
        outputs.append(hidden_states(nlp, SENTENCES))
    for v2_out, v3_out in zip(*outputs):
        numpy.testing.assert_array_equal(v2_out, v3_out)


@needs_bf16
def test_bfloat16_prediction_runs_under_autocast_and_stays_close(tiny_bert_dir, tmp_path):
    nlp = make_nlp(tiny_bert_dir, False)
    nlp.initialize(lambda: tagged_examples(nlp, SENTENCES))
    nlp.to_disk(tmp_path / "pipeline")
    fp32 = spacy.load(tmp_path / "pipeline")
    bf16 = spacy.load(tmp_path / "pipeline", config={"components": {"transformer": {"model": {"bfloat16": True}}}})
    seen_fp32, seen_bf16 = autocast_states(fp32), autocast_states(bf16)
    expected, got = hidden_states(fp32, SENTENCES), hidden_states(bf16, SENTENCES)
    assert seen_fp32 and all(state == (False, torch.float32) for state in seen_fp32)
    assert seen_bf16 and all(state == (True, torch.bfloat16) for state in seen_bf16)
    for e, g in zip(expected, got):
        assert g.dtype == numpy.float32
        assert not numpy.array_equal(e, g)  # bfloat16 products round differently
        assert numpy.abs(g - e).max() < 0.05 * numpy.abs(e).max()


@needs_bf16
def test_bfloat16_training_keeps_float32_weights_and_gradients(tiny_bert_dir):
    nlp = make_nlp(tiny_bert_dir, True)
    examples = tagged_examples(nlp, SENTENCES)
    optimizer = nlp.initialize(lambda: examples)
    seen = autocast_states(nlp)
    transformer = nlp.get_pipe("transformer").model.transformer
    before = {name: p.detach().clone() for name, p in transformer.named_parameters()}
    grads = []
    last = transformer.encoder.layer[-1].output.dense.weight
    last.register_hook(lambda grad: grads.append(grad.dtype))
    losses = {}
    for _ in range(3):  # the tagger's zero-initialised output passes no gradient at first
        nlp.update(examples, sgd=optimizer, losses=losses)
    assert seen and all(state == (True, torch.bfloat16) for state in seen)
    assert grads and set(grads) == {torch.float32}
    assert all(p.dtype == torch.float32 for p in transformer.parameters())
    assert not torch.equal(last, before["encoder.layer.1.output.dense.weight"])
    assert numpy.isfinite(losses["tagger"])


def test_without_bfloat16_support_the_encoder_warns_and_runs_in_float32(tiny_bert_dir, monkeypatch):
    monkeypatch.setattr(encoder_forward, "bfloat16_supported", lambda: False)
    nlp = make_nlp(tiny_bert_dir, True)
    nlp.initialize(lambda: tagged_examples(nlp, SENTENCES))
    seen = autocast_states(nlp)
    with pytest.warns(UserWarning, match="no bfloat16 support.*float32"):
        nlp("anna lives in paris .")
    assert seen == [(False, torch.float32)]


def test_int8_replaces_bfloat16_in_prediction(tiny_bert_dir, tmp_path):
    nlp = make_nlp(tiny_bert_dir, False)
    nlp.initialize(lambda: tagged_examples(nlp, SENTENCES))
    nlp.to_disk(tmp_path / "pipeline")
    settings = {"bfloat16": True, "quantize": True}
    loaded = spacy.load(tmp_path / "pipeline", config={"components": {"transformer": {"model": settings}}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning either: bfloat16 is not asked for
        doc = loaded("anna lives in paris .")
    assert doc._.trf_data.model_output.last_hidden_state.dtype == numpy.float32
    assert not loaded.get_pipe("transformer").model.transformer._concner_bfloat16
