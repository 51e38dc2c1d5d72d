"""Frozen, cached lower layers (spacy_concner.TransformerModel.v2 with frozen_layers = K):
the cached forward equals the model's own in evaluation mode; frozen parameters get no
gradient and no optimizer state; the cache is reused and bounded; pipelines trained
with it save, load and predict as before."""
import pytest
import spacy
import torch
from confection import ConfigValidationError
from transformers import AutoModel, AutoTokenizer

from spacy_concner.encoder_forward import attach, attached_cache
from spacy_concner.frozen_layers import LowerLayerCache

from conftest import tagged_examples, tagger_on_transformer

SENTENCES = ["anna lives in paris .", "boris flew to lagos yesterday .", "oslo ."]

def make_nlp(name, frozen: int, cache_mb: float = 64):
    return tagger_on_transformer(
        "spacy_concner.TransformerModel.v2", name=str(name), frozen_layers=frozen, cache_mb=cache_mb
    )


def batch(tiny_bert_dir, texts):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    return tokenizer(texts, padding="longest", return_tensors="pt")


def test_cached_forward_equals_the_models_own_in_evaluation_mode(tiny_bert_dir):
    model = AutoModel.from_pretrained(tiny_bert_dir).eval()
    inputs = batch(tiny_bert_dir, SENTENCES)
    with torch.no_grad():
        expected = model(**inputs).last_hidden_state
        attach(model, LowerLayerCache(model, n_layers=1, max_bytes=2**20))
        first = model(**inputs).last_hidden_state  # computes the lower layers
        second = model(**inputs).last_hidden_state  # reads them from the cache
    assert model._concner_cache.misses == 3 and model._concner_cache.hits == 3
    real = inputs["attention_mask"].bool()
    assert torch.allclose(first[real], expected[real], atol=1e-5)
    assert torch.equal(first[real], second[real])


def test_a_window_is_the_same_in_any_batch(tiny_bert_dir):
    """Padding to another length does not change a cached window's states."""
    model = AutoModel.from_pretrained(tiny_bert_dir).eval()
    attach(model, LowerLayerCache(model, n_layers=1, max_bytes=2**20))
    with torch.no_grad():
        alone = model(**batch(tiny_bert_dir, SENTENCES[2:])).last_hidden_state[0]
        padded = model(**batch(tiny_bert_dir, SENTENCES)).last_hidden_state[2, : len(alone)]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_the_cache_keeps_to_its_bound(tiny_bert_dir):
    model = AutoModel.from_pretrained(tiny_bert_dir).train()
    inputs = batch(tiny_bert_dir, SENTENCES)
    # windows run shortest first: the shortest fits, the others do not
    shortest = int(inputs["attention_mask"].sum(dim=1).min()) * model.config.hidden_size * 4
    cache = LowerLayerCache(model, n_layers=1, max_bytes=shortest)
    attach(model, cache)
    with pytest.warns(UserWarning, match="cache is full"):
        with torch.no_grad():
            model(**inputs)
    assert cache.n_bytes == shortest and len(cache._states) == 1
    with torch.no_grad():
        model(**inputs)
    assert (cache.hits, cache.misses) == (1, 5)


@pytest.mark.parametrize("frozen", [0, 1])
def test_frozen_parameters_get_no_gradient_and_no_optimizer_state(tiny_bert_dir, frozen):
    nlp = make_nlp(tiny_bert_dir, frozen)
    examples = tagged_examples(nlp, SENTENCES)
    optimizer = nlp.initialize(lambda: examples)
    transformer = nlp.get_pipe("transformer").model.transformer
    before = {name: p.detach().clone() for name, p in transformer.named_parameters()}
    for _ in range(3):  # the tagger's zero-initialised output passes no gradient at first
        nlp.update(examples, sgd=optimizer)
    changed = {name for name, p in transformer.named_parameters() if not torch.equal(p, before[name])}
    with_state = {name for _, name in optimizer.mom1 if isinstance(name, str)}
    frozen_prefixes = ("embeddings.", *(f"encoder.layer.{i}." for i in range(frozen)))
    for name, param in transformer.named_parameters():
        is_frozen = name.startswith(frozen_prefixes)
        trains = not is_frozen and not name.startswith("pooler.")  # the pooler is unused
        assert param.requires_grad is not is_frozen, name
        assert (name in changed) is trains, name
        assert (name in with_state) is trains, name
        if is_frozen:
            assert param.grad is None, name
    cache = transformer._concner_cache
    assert cache.misses == len(SENTENCES) and cache.hits == 2 * len(SENTENCES)


def test_a_pipeline_trained_with_the_cache_saves_and_loads(tiny_bert_dir, tmp_path):
    nlp = make_nlp(tiny_bert_dir, 1)
    examples = tagged_examples(nlp, SENTENCES)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    for text in SENTENCES:
        expected = nlp(text)._.trf_data.model_output.last_hidden_state
        got = loaded(text)._.trf_data.model_output.last_hidden_state
        assert got == pytest.approx(expected, abs=1e-5)
    assert attached_cache(loaded.get_pipe("transformer").model.transformer) is None


def test_prediction_in_length_buckets_equals_one_doc_at_a_time(tiny_bert_dir, tmp_path, monkeypatch):
    """A batch of mixed lengths runs shortest first, 2 windows at a time, each pair
    padded to its own longest: every Doc gets what it gets alone."""
    from spacy_concner import encoder_forward

    shapes = []
    encode = encoder_forward._encode
    monkeypatch.setattr(encoder_forward, "_encode", lambda t, ids, *args: shapes.append(tuple(ids.shape)) or encode(t, ids, *args))
    nlp = make_nlp(tiny_bert_dir, 1)
    nlp.initialize(lambda: tagged_examples(nlp, SENTENCES))
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline", config={"components": {"transformer": {"model": {"predict_rows": 2}}}})
    texts = [" ".join(["anna"] * n) + " ." for n in (7, 1, 12, 3, 5)]
    batched = [doc._.trf_data.model_output.last_hidden_state for doc in loaded.pipe(texts, batch_size=5)]
    transformer = loaded.get_pipe("transformer").model.transformer
    assert [rows for rows, _ in shapes] == [2, 2, 1]
    lengths = [length for _, length in shapes]
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]
    for text, hidden in zip(texts, batched):
        alone = AutoModel.from_pretrained(tiny_bert_dir)  # the untrained weights, own forward
        alone.load_state_dict(transformer.state_dict())
        with torch.no_grad():
            expected = alone.eval()(**batch(tiny_bert_dir, [text])).last_hidden_state.numpy()
        assert hidden[0, : expected.shape[1]] == pytest.approx(expected[0], abs=1e-5)


def test_training_runs_length_groups_with_the_gradients_of_one_padded_batch(tiny_bert_dir):
    """Regression: in training the whole batch ran padded to its longest window, so one
    long window (hundreds of words) made every window of the batch as long, with
    gigabytes of attention activations. Now training runs the windows shortest first,
    `rows` at a time, like prediction, with the same outputs and gradients."""
    texts = [" ".join(["anna"] * n) + " ." for n in (40, 1, 2, 3, 2)]
    inputs = batch(tiny_bert_dir, texts)
    real = inputs["attention_mask"].bool()
    reference = AutoModel.from_pretrained(tiny_bert_dir, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    grouped = AutoModel.from_pretrained(tiny_bert_dir, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    cache = LowerLayerCache(grouped, n_layers=1, max_bytes=2**20)
    attach(grouped, cache, rows=2)
    lengths = []
    first_upper = cache.upper_layers[0]
    first_upper.register_forward_pre_hook(lambda module, args: lengths.append(tuple(args[0].shape[:2])))
    outputs = [model.train()(**inputs).last_hidden_state for model in (reference, grouped)]
    assert torch.allclose(outputs[1][real], outputs[0][real], atol=1e-5)
    pieces = sorted(inputs["attention_mask"].sum(dim=1).tolist())
    assert lengths == [(2, pieces[1]), (2, pieces[3]), (1, pieces[4])]
    assert pieces[3] < pieces[4] == inputs["input_ids"].shape[1]  # only the long window is long
    for output in outputs:
        (output[real] ** 2).sum().backward()
    upper = [(name, param) for name, param in grouped.named_parameters() if name.startswith("encoder.layer.1.")]
    expected = dict(reference.named_parameters())
    assert upper and all(torch.allclose(param.grad, expected[name].grad, atol=1e-4) for name, param in upper)


def test_frozen_layers_out_of_range_fail_at_initialize(tiny_bert_dir):
    """A config error, which spacy train shows as one message (a student encoder with
    fewer layers than frozen_layers)."""
    nlp = make_nlp(tiny_bert_dir, 2)  # the tiny BERT has 2 layers: one must train
    with pytest.raises(ConfigValidationError, match=r"frozen_layers must be in \[0, 1\]"):
        nlp.initialize(lambda: tagged_examples(nlp, SENTENCES))
