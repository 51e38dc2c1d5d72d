"""spacy_concner.TransformerModel.v1: loads a local encoder folder, freezes the
embeddings, and fails helpfully when the encoder is missing."""
import shutil
from inspect import signature

import pytest
import spacy
from confection import ConfigValidationError
from spacy.training import Example
from spacy.util import registry

from spacy_concner.architectures import looks_like_path

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


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_a_missing_encoder_folder_is_named_without_asking_the_hub(tmp_path, monkeypatch, relative):
    """Regression: a mistyped encoder folder went to the model hub first (six retries,
    39 s, without HF_HUB_OFFLINE), then ended a 102-line chained traceback."""
    from transformers import AutoConfig

    def no_hub(*args, **kwargs):
        raise AssertionError("the hub was asked")

    monkeypatch.setattr(AutoConfig, "from_pretrained", no_hub)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "assets" / "encoders").mkdir(parents=True)
    name = "assets/encoders/e5-smal" if relative else str(tmp_path / "no-encoder")
    nlp = make_nlp(name, True)
    with pytest.raises(ConfigValidationError) as error:
        nlp.initialize()
    assert error.value.title == f"Cannot load the encoder {name!r}: no such folder"
    assert "python -m spacy_concner encoder e5" in error.value.desc
    assert error.value.__context__ is None  # no chained traceback


@pytest.mark.parametrize(
    "name,is_path",
    [("xlm-roberta-base", False), ("intfloat/multilingual-e5-small", False), ("./e5", True),
     ("~/e5", True), ("/models/e5", True), ("assets/encoders/e5", True)],
)
def test_looks_like_path(name, is_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "assets").mkdir()
    assert looks_like_path(name) is is_path
