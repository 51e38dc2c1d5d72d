"""spacy_concner.TransformerModel.v2 with quantize = true: the encoder's Linear layers run
in int8 from the first prediction on, the saved weights stay fp32, training is refused."""
import sys

import numpy
import pytest
import spacy
import torch
from confection import ConfigValidationError
from spacy.training import Example
from spacy.training.initialize import init_nlp
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

from spacy_concner.int8 import int8_copies, quantize_linears

from conftest import synthetic_pairs
from test_pipeline import concner_config

QUANTIZE = {"components": {"transformer": {"model": {"quantize": True}}}}
SENTENCES = [" ".join(tr) for _, _, tr, _ in synthetic_pairs(12, seed=5)]


def encoder(nlp) -> nn.Module:
    return nlp.get_pipe("transformer").model.transformer


def n_linears(module: nn.Module) -> int:
    return sum(type(m) is nn.Linear for m in module.modules())


def predictions(nlp):
    docs = list(nlp.pipe(SENTENCES, batch_size=5))
    probs = nlp.get_pipe("concner").predict(docs)  # from the encoder output the Docs carry
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs], probs


def test_linear_layers_run_in_int8_from_the_first_prediction(teacher_dir):
    nlp = spacy.load(teacher_dir, config=QUANTIZE)
    assert int8_copies(encoder(nlp)) == []
    nlp("Anna wohnt in Oslo .")
    copies = int8_copies(encoder(nlp))
    assert len(copies) == n_linears(encoder(nlp)) > 0
    assert all(type(copy) is DynamicInt8Linear for copy in copies)
    nlp("Boris wohnt in Lima .")
    assert int8_copies(encoder(nlp)) == copies  # quantised once


def test_int8_predictions_are_close_to_fp32(teacher_dir):
    fp32_ents, fp32_probs = predictions(spacy.load(teacher_dir))
    int8_ents, int8_probs = predictions(spacy.load(teacher_dir, config=QUANTIZE))
    assert any(fp32_ents) and int8_ents == fp32_ents
    for fp32, int8 in zip(fp32_probs, int8_probs):
        numpy.testing.assert_allclose(int8, fp32, atol=0.05)


def test_saved_weights_stay_fp32(teacher_dir, tmp_path):
    """Regression: quantize_dynamic in place would put packed int8 weights into the
    state dict that spaCy saves, which no loader reads."""
    original = encoder(spacy.load(teacher_dir)).state_dict()
    nlp = spacy.load(teacher_dir, config=QUANTIZE)
    nlp("Anna wohnt in Oslo .")
    assert encoder(nlp).state_dict().keys() == original.keys()
    nlp.to_disk(tmp_path / "saved")
    loaded = spacy.load(tmp_path / "saved")
    assert loaded.config["components"]["transformer"]["model"]["quantize"] is True
    assert int8_copies(encoder(loaded)) == []  # a new module: quantised at its first prediction
    for name, tensor in encoder(loaded).state_dict().items():
        assert tensor.dtype == original[name].dtype and torch.equal(tensor, original[name]), name


def test_a_quantised_pipeline_cannot_be_trained(teacher_dir, tiny_bert_dir, paired_docbins):
    nlp = spacy.load(teacher_dir, config=QUANTIZE)
    doc = nlp.make_doc("Anna wohnt in Oslo .")
    example = Example.from_dict(doc, {"entities": ["U-PER", "O", "O", "U-LOC", "O"]})
    with pytest.raises(ConfigValidationError, match="quantize = true is for prediction.*--quantize"):
        nlp.update([example])
    config = concner_config(tiny_bert_dir, paired_docbins, **{"components.transformer.model.quantize": True})
    with pytest.raises(ConfigValidationError, match="quantize = true is for prediction"):
        init_nlp(config)


def test_an_encoder_off_the_cpu_stays_fp32_with_a_warning():
    module = nn.Sequential(nn.Linear(4, 4)).to("meta")
    with pytest.warns(UserWarning, match="quantize = true is for CPUs"):
        quantize_linears(module)
    assert int8_copies(module) == []


def test_a_torch_without_dynamic_quantisation_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.ao.quantization", None)
    with pytest.raises(ConfigValidationError, match="needs torch.ao.quantization.*quantize = false"):
        quantize_linears(nn.Sequential(nn.Linear(4, 4)))
