from pathlib import Path

import numpy
import pytest
import spacy
import torch
from thinc.api import SGD
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.util import load_config, load_model_from_config, resolve_dot_names

from spacy_concner.pairs import PAIR_KEY, pair_key
from spacy_concner.entity_pipe import biluo_to_iob2, entity_confidences, iob2_to_spans
from spacy_concner.pipeline import SOFT_TARGETS_KEY

from conftest import tiny_encoder

CONFIGS = Path(__file__).parents[1] / "configs"


def tiny_overrides(tiny_bert_dir, paired_docbins):
    """Config overrides that train on the synthetic pairs with the tiny BERT."""
    return {
        "paths.train": str(paired_docbins["source"]),
        "paths.translation": str(paired_docbins["translation"]),
        "paths.dev": str(paired_docbins["dev"]),
        **tiny_encoder(tiny_bert_dir),
        "training.optimizer.learn_rate": 0.001,
    }


def concner_config(tiny_bert_dir, paired_docbins, name="concner.cfg", **overrides):
    overrides = {**tiny_overrides(tiny_bert_dir, paired_docbins), **overrides}
    return load_config(CONFIGS / name, overrides=overrides, interpolate=False)


@pytest.fixture(scope="module")
def nlp(tiny_bert_dir, paired_docbins):
    return init_nlp(concner_config(tiny_bert_dir, paired_docbins))


def training_examples(nlp):
    (train,) = resolve_dot_names(nlp.config.interpolate(), ["corpora.train"])
    return list(train(nlp))


@pytest.mark.parametrize(
    "tags,spans",
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [(0, 2, "PER"), (3, 4, "LOC")]),
        (["I-PER", "I-PER"], [(0, 2, "PER")]),  # I- after the start: an entity begins
        (["O", "I-LOC", "B-LOC", "I-LOC"], [(1, 2, "LOC"), (2, 4, "LOC")]),
        (["B-PER", "I-LOC"], [(0, 1, "PER"), (1, 2, "LOC")]),  # type change
        ([], []),
    ],
)
def test_iob2_to_spans_repairs_invalid_sequences(tags, spans):
    assert iob2_to_spans(tags) == spans


def test_biluo_to_iob2():
    assert [biluo_to_iob2(t) for t in ["U-PER", "B-LOC", "I-LOC", "L-LOC", "O", None]] == [
        "B-PER", "B-LOC", "I-LOC", "I-LOC", "O", None,
    ]


def test_initialize_labels_and_tags(nlp):
    concner = nlp.get_pipe("concner")
    assert concner.labels == ("LOC", "PER")
    assert concner.tags == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_add_label_before_initialize_only(nlp):
    fresh = spacy.blank("xx").add_pipe("concner")
    assert fresh.add_label("PER") == 1 and fresh.add_label("LOC") == 1
    assert fresh.add_label("PER") == 0
    assert fresh.tags == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    with pytest.raises(ValueError, match="after it was initialized"):
        nlp.get_pipe("concner").add_label("MISC")


def test_predict_writes_valid_entities_in_batches(nlp):
    texts = ["Anna lives in Paris .", "", "   ", "yesterday Boris flew to Oslo ."] * 5
    docs = list(nlp.pipe(texts, batch_size=3))
    assert [d.text for d in docs] == texts
    for doc in docs:
        assert all(ent.label_ in ("LOC", "PER") for ent in doc.ents)
        assert all(tok.ent_iob_ in ("B", "I", "O") for tok in doc)


def long_doc(nlp, n_words=700):
    words = (["Anna", "lives", "in", "Paris", "."] * (n_words // 5 + 1))[:n_words]
    return Doc(nlp.vocab, words=words)


def test_prediction_on_doc_longer_than_encoder_window(nlp):
    doc = nlp(long_doc(nlp))
    pieces = doc._.trf_data.wordpieces.input_ids.size
    assert pieces > 512
    assert len(nlp.get_pipe("concner").predict([doc])[0]) == len(doc)


def test_update_with_empty_whitespace_and_long_docs(tiny_bert_dir, paired_docbins):
    nlp = init_nlp(concner_config(tiny_bert_dir, paired_docbins))
    examples = training_examples(nlp)[:4]
    for doc in (Doc(nlp.vocab, words=[]), Doc(nlp.vocab, words=[" ", "  "], spaces=[False, False]),
                long_doc(nlp)):
        reference = doc.copy()
        reference.ents = []
        examples.append(Example(doc, reference))
    losses = nlp.update(examples, sgd=nlp.create_optimizer())
    assert numpy.isfinite(losses["concner"]) and losses["concner"] > 0
    assert nlp.update([examples[4]])["concner"] == 0.0  # only an empty Doc: nothing to learn


@pytest.mark.parametrize("config", ["concner.cfg", "student.cfg", "mcl_ner.cfg"])
def test_a_token_without_word_pieces_is_tagged_and_trained_on(tiny_bert_dir, paired_docbins, config):
    """Regression: a zero-width space as a token of its own (WikiANN zh has them) has no
    word piece, and the configs' reduce_first.v1 pooling failed the whole batch."""
    nlp = init_nlp(concner_config(tiny_bert_dir, paired_docbins, config))
    doc = Doc(nlp.vocab, words=["Anna", "\u200b", "lives", "in", "Paris", "."])
    assert len(nlp(doc.copy())) == 6
    reference = doc.copy()
    reference.ents = [Span(reference, 0, 1, "PER")]
    losses = nlp.update(training_examples(nlp)[:2] + [Example(doc, reference)], sgd=nlp.create_optimizer())
    assert all(numpy.isfinite(value) for value in losses.values())


def test_serialization_round_trip(nlp, tmp_path):
    texts = ["Anna lives in Paris .", "the mayor of Lima met Farid ."]
    expected = [nlp.get_pipe("concner").predict([nlp.make_doc(t)]) for t in texts]
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    from_bytes = load_model_from_config(nlp.config).from_bytes(nlp.to_bytes())
    for other in (loaded, from_bytes):
        assert other.get_pipe("concner").tags == nlp.get_pipe("concner").tags
        for text, probs in zip(texts, expected):
            doc = other(text)
            numpy.testing.assert_allclose(
                other.get_pipe("concner").predict([other.make_doc(text)])[0], probs[0], rtol=1e-5
            )
            assert [(e.text, e.label_) for e in doc.ents] == [(e.text, e.label_) for e in nlp(text).ents]


def loss_parts(nlp, examples):
    concner = nlp.get_pipe("concner")
    docs = [eg.predicted for eg in examples]
    nlp.get_pipe("transformer").set_annotations(docs, nlp.get_pipe("transformer").predict(docs))
    scores = concner.model.predict(docs)
    return concner, scores, concner.get_loss(examples, scores)


def test_loss_is_alpha_ce_plus_beta_contrastive(nlp, paired_docbins):
    examples = training_examples(nlp)[:8]
    concner, (vectors, probs), (loss, (d_vectors, d_logits)) = loss_parts(nlp, examples)
    gold = [concner.gold_tag_ids(eg) for eg in examples]
    _, ce = concner.loss.cross_entropy(probs, gold)
    _, lcl = concner.loss.label_loss(numpy.concatenate(vectors), numpy.concatenate(gold))
    sentence_vectors = numpy.stack([v.mean(axis=0) for v in vectors])
    partners = numpy.asarray([i + 1 if i % 2 == 0 else i - 1 for i in range(8)], dtype="int32")
    _, tcl = concner.loss.translation_loss(sentence_vectors, partners)
    assert loss == pytest.approx(0.5 * ce + 0.25 * (lcl + tcl), rel=1e-5)
    assert lcl > 0 and tcl > 0
    assert all(numpy.abs(d).sum() > 0 for d in d_vectors)


def test_beta_zero_is_cross_entropy_only(tiny_bert_dir, paired_docbins):
    nlp = init_nlp(concner_config(tiny_bert_dir, paired_docbins, **{"components.concner.beta": 0.0}))
    examples = training_examples(nlp)[:8]
    concner, (_, probs), (loss, (d_vectors, _)) = loss_parts(nlp, examples)
    _, ce = concner.loss.cross_entropy(probs, [concner.gold_tag_ids(eg) for eg in examples])
    assert loss == pytest.approx(0.5 * ce)
    assert all(not d.any() for d in d_vectors)


def test_contrastive_gradients_reach_the_encoder(tiny_bert_dir, paired_docbins):
    """One SGD update from the same initial weights (Adam's first step would only
    see the gradients' signs): the encoder moves differently with beta > 0 than
    with beta = 0, and identically for two beta = 0 runs."""

    def encoder_weights_after_update(beta):
        config = concner_config(tiny_bert_dir, paired_docbins, **{"components.concner.beta": beta})
        nlp = init_nlp(config)
        examples = training_examples(nlp)[:16]
        sgd = SGD(0.1)
        nlp.update(examples, sgd=sgd)
        # nlp.update(sgd=...) finishes the transformer's update before its listeners
        # backprop (`spacy train` finishes all updates after the step): apply it here
        nlp.get_pipe("transformer").finish_update(sgd)
        hf = nlp.get_pipe("transformer").model.transformer
        return torch.cat([p.detach().flatten() for p in hf.encoder.parameters()])

    ce_only = encoder_weights_after_update(0.0)
    assert torch.equal(ce_only, encoder_weights_after_update(0.0))
    assert not torch.allclose(ce_only, encoder_weights_after_update(0.25), atol=1e-7)


@pytest.mark.parametrize("version,moves", [("v1", False), ("v2", True)])
def test_the_first_update_reaches_the_encoder_from_a_random_softmax_layer(
    tiny_bert_dir, paired_docbins, version, moves
):
    """Regression: v1's zero-initialised softmax layer passes no gradient to the encoder
    at first, and the e5 encoder learned NER several times slower (English dev F1 19
    after 10 epochs instead of 82); v2 starts from random weights."""
    overrides = {"components.concner.beta": 0.0,
                 "components.concner.model.@architectures": f"spacy_concner.TokenClassifier.{version}"}
    nlp = init_nlp(concner_config(tiny_bert_dir, paired_docbins, **overrides))
    output_layer = nlp.get_pipe("concner").model.get_ref("output_layer")
    assert bool(output_layer.get_param("W").any()) is moves
    hf = nlp.get_pipe("transformer").model.transformer
    before = torch.cat([p.detach().flatten() for p in hf.encoder.parameters()])
    sgd = SGD(0.1)
    nlp.update(training_examples(nlp)[:16], sgd=sgd)
    nlp.get_pipe("transformer").finish_update(sgd)
    after = torch.cat([p.detach().flatten() for p in hf.encoder.parameters()])
    assert (not torch.equal(before, after)) is moves


def test_null_translation_loss_is_the_tcl_ablation(tiny_bert_dir, paired_docbins):
    overrides = {"components.concner.translation_loss": None, "components.concner.beta": 0.5,
                 "components.concner.alpha": 0.5}
    nlp = init_nlp(concner_config(tiny_bert_dir, paired_docbins, **overrides))
    concner = nlp.get_pipe("concner")
    assert concner.loss.translation_loss is None and concner.loss.label_loss is not None
    examples = training_examples(nlp)[:8]
    concner, (vectors, probs), (loss, _) = loss_parts(nlp, examples)
    gold = [concner.gold_tag_ids(eg) for eg in examples]
    _, ce = concner.loss.cross_entropy(probs, gold)
    _, lcl = concner.loss.label_loss(numpy.concatenate(vectors), numpy.concatenate(gold))
    assert loss == pytest.approx(0.5 * ce + 0.5 * lcl, rel=1e-5)


@pytest.fixture(scope="module")
def code_switched(paired_docbins, tmp_path_factory):
    """The code-switched view of the synthetic source, made with a tiny dictionary."""
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    from spacy_concner.translate.codeswitch import CodeSwitcher
    from spacy_concner.translate.lexicon import Lexicon

    words = {"lives": "wohnt", "in": "in", "said": "sagte", "nothing": "nichts", "Paris": "Paris"}
    switcher = CodeSwitcher("eng-deu", Lexicon(words, words), ratio=0.5)
    docs = DocBin().from_disk(paired_docbins["source"]).get_docs(Vocab())
    path = tmp_path_factory.mktemp("views") / "cs.spacy"
    DocBin(docs=[t.doc for t in switcher(docs)], store_user_data=True).to_disk(path)
    return path


def test_multi_view_loss_contrasts_source_translation_and_code_switched_view(
    tiny_bert_dir, paired_docbins, code_switched
):
    """paths.translation as a list of view files: each source comes with its two views,
    and the multi-view loss takes all three as one group."""
    overrides = {"paths.translation": [str(paired_docbins["translation"]), str(code_switched)],
                 "components.concner.translation_loss.@losses": "spacy_concner.MultiViewContrastiveLoss.v1"}
    nlp = init_nlp(concner_config(tiny_bert_dir, paired_docbins, **overrides))
    examples = training_examples(nlp)[:9]
    assert [pair_key(eg) for eg in examples] == [f"synthetic:{i}" for i in range(3) for _ in range(3)]
    concner, (vectors, probs), (loss, _) = loss_parts(nlp, examples)
    gold = [concner.gold_tag_ids(eg) for eg in examples]
    _, ce = concner.loss.cross_entropy(probs, gold)
    _, lcl = concner.loss.label_loss(numpy.concatenate(vectors), numpy.concatenate(gold))
    sentence_vectors = numpy.stack([v.mean(axis=0) for v in vectors])
    _, views = concner.loss.translation_loss(sentence_vectors, numpy.repeat(numpy.arange(3), 3))
    assert loss == pytest.approx(0.5 * ce + 0.25 * (lcl + views), rel=1e-5)
    losses = nlp.update(examples, sgd=nlp.create_optimizer())
    assert numpy.isfinite(losses["concner"])


def soft_example(nlp, tags, probs):
    doc = nlp.make_doc("Anna lives in Paris .")
    reference = doc.copy()
    reference.user_data[SOFT_TARGETS_KEY] = {"tags": tags, "probs": probs}
    return Example(doc, reference)


def test_soft_targets_train_with_the_distillation_loss(nlp):
    concner = nlp.get_pipe("concner")
    teacher_probs = numpy.full((5, len(concner.tags)), 0.1, dtype="float32")
    teacher_probs[:, 0] = 1 - 0.1 * (len(concner.tags) - 1)
    eg = soft_example(nlp, concner.tags, teacher_probs)
    _, (_, probs), (loss, (d_vectors, d_logits)) = loss_parts(nlp, [eg])
    assert loss == pytest.approx(float(((probs[0] - teacher_probs) ** 2).mean()), rel=1e-5)
    assert not d_vectors[0].any() and d_logits[0].any()


def test_soft_targets_with_other_labels_are_refused(nlp):
    eg = soft_example(nlp, ["O", "B-MISC", "I-MISC"], numpy.zeros((5, 3), dtype="float32"))
    with pytest.raises(ValueError, match="label sets must match"):
        loss_parts(nlp, [eg])


def test_pair_key_survives_docbin(paired_docbins):
    from spacy.tokens import DocBin

    docs = list(DocBin().from_disk(paired_docbins["translation"]).get_docs(spacy.blank("xx").vocab))
    assert docs[3].user_data[PAIR_KEY] == "synthetic:3"


def test_teacher_student_loss_returns_loss_then_logit_gradient_as_spacy_v4(nlp):
    concner = nlp.get_pipe("concner")
    student = [numpy.array([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]], dtype="float32")]
    teacher = [numpy.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]], dtype="float32")]
    loss, d_student = concner.get_teacher_student_loss(teacher, student)
    assert loss == pytest.approx((0.25 + 0.0625 + 0.0625) / 3 / 2)  # token 2 matches
    d_probs = 2 * (student[0] - teacher[0]) / 3 / 2
    expected = student[0] * (d_probs - (d_probs * student[0]).sum(axis=1, keepdims=True))
    numpy.testing.assert_allclose(d_student[0], expected, rtol=1e-5)


def test_lr_scale_multiplies_the_output_layer_step_only(tiny_bert_dir, paired_docbins):
    """With plain SGD, lr_scale = 10 moves the softmax layer 10 times as far from the
    same start; the shared encoder's step does not change."""

    def steps(lr_scale):
        overrides = {"components.concner.lr_scale": lr_scale}
        nlp = init_nlp(concner_config(tiny_bert_dir, paired_docbins, **overrides))
        output_layer = nlp.get_pipe("concner").model.get_ref("output_layer")
        hf = nlp.get_pipe("transformer").model.transformer
        before = output_layer.get_param("W").copy(), hf.encoder.layer[0].output.dense.weight.clone()
        sgd = SGD(0.1)
        nlp.update(training_examples(nlp)[:8], sgd=sgd)
        nlp.get_pipe("transformer").finish_update(sgd)
        return (output_layer.get_param("W") - before[0],
                hf.encoder.layer[0].output.dense.weight.detach() - before[1])

    head_1, encoder_1 = steps(1.0)
    head_10, encoder_10 = steps(10.0)
    assert numpy.abs(head_1).max() > 0
    # float32 rounding of steps of up to 0.35: entries near 0 differ by ~1e-7
    numpy.testing.assert_allclose(head_10, 10 * head_1, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(encoder_10, encoder_1)


def test_unknown_entity_type_is_left_out_with_a_warning(nlp):
    concner = nlp.get_pipe("concner")
    doc = nlp.make_doc("Anna lives in Paris .")
    eg = Example.from_dict(doc, {"entities": [(0, 4, "PER"), (14, 19, "PLANET")]})
    with pytest.warns(UserWarning, match="no entity type PLANET"):
        ids = concner.gold_tag_ids(eg)
    tags = concner.tags
    assert [tags[i] if i >= 0 else None for i in ids.tolist()] == ["B-PER", "O", "O", None, "O"]


def test_tokens_of_one_piece_get_one_tag():
    from spacy_concner.entity_pipe import one_tag_per_piece

    tags = ["B-LOC", "B-LOC", "O", "O", "B-PER", "I-PER", "B-ORG", "B-ORG"]
    pieces = [1, 1, 2, 2, 3, 4, 5, 5]
    assert one_tag_per_piece(tags, pieces) == ["B-LOC", "I-LOC", "O", "O", "B-PER", "I-PER", "B-ORG", "I-ORG"]
    assert one_tag_per_piece(["B-LOC", "B-LOC"], [-1, -1]) == ["B-LOC", "B-LOC"]  # no pieces: as predicted
    assert one_tag_per_piece(["O", "B-LOC"], [7, 7]) == ["O", "O"]
    assert one_tag_per_piece(["B-LOC"], None) == ["B-LOC"]


def test_entities_keep_the_tokens_of_one_piece_together():
    """The span form of one_tag_per_piece (the word-pair grid's): an entity that ends
    inside a piece takes the rest of it, one that starts inside a piece outside any
    entity starts after it, entities that split one piece merge; confidences are the
    lowest of the entities each kept one overlaps."""
    from spacy_concner.entity_pipe import one_entity_per_piece

    pieces = [1, 1, 2, 2, 3, 4, 4, 5]
    found = [(0, 1, "LOC"), (3, 5, "PER"), (5, 6, "ORG"), (6, 7, "ORG")]
    spans, confidences = one_entity_per_piece(found, [0.9, 0.8, 0.7, 0.6], pieces)
    assert spans == [(0, 2, "LOC"), (4, 5, "PER"), (5, 7, "ORG")]
    assert confidences == [0.9, 0.8, 0.6]
    assert one_entity_per_piece(found, [0.9, 0.8, 0.7, 0.6], None) == (found, [0.9, 0.8, 0.7, 0.6])
    assert one_entity_per_piece([], [], pieces) == ([], [])


def token_confidences(concner, doc):
    """Each entity's lowest probability of its tokens' IOB2 tags, read from the
    component's distributions and the Doc's token annotation."""
    probs = concner.model.ops.to_numpy(concner.predict([doc])[0])
    tags = [f"{token.ent_iob_}-{token.ent_type_}" if token.ent_type_ else "O" for token in doc]
    return [min(probs[i, concner.tags.index(tags[i])] for i in range(ent.start, ent.end)) for ent in doc.ents]


def test_a_multi_token_entity_scores_its_least_likely_tag(nlp):
    """set_annotations on distributions made by hand: B-LOC 0.8, I-LOC 0.6."""
    concner = nlp.get_pipe("concner")  # tags O, B-LOC, I-LOC, B-PER, I-PER
    doc = Doc(nlp.vocab, words=["in", "New", "York", "."])
    probs = numpy.array([[0.9, 0.1, 0, 0, 0], [0.1, 0.8, 0.1, 0, 0], [0.2, 0.1, 0.6, 0.1, 0], [0.7, 0, 0, 0.3, 0]])
    concner.set_annotations([doc], [probs.astype("float32")])
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(1, 3, "LOC")]
    assert entity_confidences(doc) == [pytest.approx(0.6)]
