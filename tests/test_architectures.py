"""spacy_concner.TransformerModel.v1: loads a local encoder folder, freezes the
embeddings, and fails helpfully when the encoder is missing."""
import shutil
from inspect import signature

import pytest
import spacy
from spacy.training import Example
from spacy.util import registry

from conftest import tagger_on_transformer

def make_nlp(name, freeze: bool):
    return tagger_on_transformer(
        "spacy_concner.TransformerModel.v1", name=str(name), freeze_embeddings=freeze
    )


def test_arguments_are_those_of_transformer_model_v3():
    v3 = registry.architectures.get("spacy-transformers.TransformerModel.v3")
    ours = registry.architectures.get("spacy_concner.TransformerModel.v1")
    assert list(signature(ours).parameters) == [*signature(v3).parameters, "freeze_embeddings"]


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_embeddings(tiny_bert_dir, freeze):
    import torch

    nlp = make_nlp(tiny_bert_dir, freeze)
    doc = nlp.make_doc("anna lives in paris .")
    examples = [Example.from_dict(doc, {"tags": ["PER", "V", "P", "LOC", "."]})]
    optimizer = nlp.initialize(lambda: examples)
    transformer = nlp.get_pipe("transformer").model.transformer
    embeddings = transformer.get_input_embeddings().weight
    query = transformer.encoder.layer[0].attention.self.query.weight
    before = embeddings.detach().clone(), query.detach().clone()
    for _ in range(2):  # the tagger's zero-initialised output passes no gradient at first
        nlp.update(examples, sgd=optimizer)
    assert embeddings.requires_grad is not freeze
    assert torch.equal(embeddings, before[0]) is freeze
    assert not torch.equal(query, before[1])
    updated = {name for _, name in optimizer.mom1}
    assert ("embeddings.word_embeddings.weight" in updated) is not freeze
    assert "encoder.layer.0.attention.self.query.weight" in updated
    if freeze:
        assert embeddings.grad is None  # no gradient memory


def test_pipeline_saves_and_loads_without_the_encoder_folder(tiny_bert_dir, tmp_path):
    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_bert_dir, encoder)
    nlp = make_nlp(encoder, True)
    doc = nlp.make_doc("anna lives in paris .")
    nlp.initialize(lambda: [Example.from_dict(doc, {"tags": ["PER", "V", "P", "LOC", "."]})])
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(encoder)
    loaded = spacy.load(tmp_path / "pipeline")
    assert [t.tag_ for t in loaded("anna lives in paris .")] == [t.tag_ for t in nlp("anna lives in paris .")]


def test_missing_encoder_says_how_to_get_one(tmp_path):
    name = str(tmp_path / "no-encoder")
    nlp = make_nlp(name, True)
    with pytest.raises(OSError) as error:
        nlp.initialize()
    assert name in str(error.value)
    assert "python -m spacy_concner encoder e5" in str(error.value)
