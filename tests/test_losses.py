from importlib.metadata import entry_points

import numpy
import pytest
from spacy.util import registry
from thinc.api import get_current_ops

from spacy_concner.losses import (
    ConcnerLoss,
    DistillationLoss,
    GridLoss,
    GridTargets,
    KLDistillationLoss,
    LabelContrastiveLoss,
    MultiViewContrastiveLoss,
    RelationContrastiveLoss,
    RelationLoss,
    SentenceCrossEntropy,
    Targets,
    TranslationContrastiveLoss,
    softmax_backprop,
)

import torch_reference as reference


def assert_matches(actual, expected, rtol=1e-4):
    """Relative agreement, with an absolute floor relative to the largest entry so
    that entries that should be 0 compare sensibly."""
    actual, expected = numpy.asarray(actual), numpy.asarray(expected)
    assert numpy.isfinite(actual).all()
    floor = rtol * max(float(numpy.abs(expected).max(initial=0.0)), 1e-12)
    numpy.testing.assert_allclose(actual, expected, rtol=rtol, atol=floor)


def check_contrastive(loss, reference_fn, vectors, truths):
    d_vectors, value = loss(vectors, truths)
    expected_value, expected_grad = reference_fn(vectors, truths, loss.temperature)
    assert d_vectors.shape == vectors.shape and d_vectors.dtype == vectors.dtype
    assert_matches(value, expected_value)
    assert_matches(d_vectors, expected_grad)
    return d_vectors, value


def check_lcl(vectors, labels, temperature=0.1):
    loss = LabelContrastiveLoss(temperature)
    return check_contrastive(loss, reference.label_contrastive, vectors, labels)


def check_tcl(vectors, partners, temperature=0.1):
    loss = TranslationContrastiveLoss(temperature)
    return check_contrastive(loss, reference.translation_contrastive, vectors, partners)


def check_multi_view(vectors, groups, temperature=0.1):
    loss = MultiViewContrastiveLoss(temperature)
    return check_contrastive(loss, reference.multi_view_contrastive, vectors, groups)


def view_groups(rng, sizes, n_unpaired):
    """Rows shuffled; group g holds sizes[g] rows, the unpaired rows are in group -1."""
    groups = numpy.array([g for g, size in enumerate(sizes) for _ in range(size)] + [-1] * n_unpaired)
    return groups[rng.permutation(len(groups))]


def paired_partners(rng, n_pairs, n_unpaired):
    """Rows shuffled; each pair points at each other, the unpaired rows at -1."""
    order = rng.permutation(2 * n_pairs + n_unpaired)
    partners = numpy.full(len(order), -1)
    first, second = order[:n_pairs], order[n_pairs : 2 * n_pairs]
    partners[first], partners[second] = second, first
    return partners


@pytest.mark.parametrize(
    "seed,n_tokens,width,n_labels,temperature",
    [(0, 6, 3, 2, 0.1), (1, 25, 8, 4, 0.1), (2, 40, 16, 7, 0.1), (3, 30, 5, 3, 0.5)],
)
def test_label_contrastive_matches_reference(seed, n_tokens, width, n_labels, temperature):
    rng = numpy.random.default_rng(seed)
    vectors = rng.normal(size=(n_tokens, width))
    labels = rng.integers(0, n_labels, size=n_tokens)
    _, value = check_lcl(vectors, labels, temperature)
    assert value > 0


@pytest.mark.parametrize(
    "seed,n_pairs,n_unpaired,width",
    [(0, 1, 0, 4), (1, 8, 0, 6), (2, 12, 5, 16), (3, 3, 7, 3)],
)
def test_translation_contrastive_matches_reference(seed, n_pairs, n_unpaired, width):
    rng = numpy.random.default_rng(seed)
    vectors = rng.normal(size=(2 * n_pairs + n_unpaired, width))
    check_tcl(vectors, paired_partners(rng, n_pairs, n_unpaired))


@pytest.mark.parametrize(
    "seed,sizes,n_unpaired,width,temperature",
    [(0, [3], 0, 4, 0.1), (1, [3, 3, 3, 3], 0, 6, 0.1), (2, [2, 3, 4, 1], 3, 16, 0.1), (3, [5, 2], 4, 3, 0.5)],
)
def test_multi_view_contrastive_matches_reference(seed, sizes, n_unpaired, width, temperature):
    """Groups of one row (a source without views) and unpaired rows are negatives only."""
    rng = numpy.random.default_rng(seed)
    vectors = rng.normal(size=(sum(sizes) + n_unpaired, width))
    _, value = check_multi_view(vectors, view_groups(rng, sizes, n_unpaired), temperature)
    assert value > 0


@pytest.mark.parametrize("seed,n_pairs,n_unpaired", [(0, 1, 0), (1, 8, 0), (2, 12, 5), (3, 3, 7)])
def test_multi_view_contrastive_of_pairs_is_tcl(seed, n_pairs, n_unpaired):
    rng = numpy.random.default_rng(seed)
    vectors = rng.normal(size=(2 * n_pairs + n_unpaired, 8)).astype("float32")
    partners = paired_partners(rng, n_pairs, n_unpaired)
    groups = numpy.where(partners >= 0, numpy.minimum(numpy.arange(len(partners)), partners), -1)
    d_tcl, tcl = TranslationContrastiveLoss(0.2)(vectors, partners)
    d_views, views = MultiViewContrastiveLoss(0.2)(vectors, groups)
    assert views == tcl
    numpy.testing.assert_array_equal(d_views, d_tcl)


def test_multi_view_contrastive_edge_cases():
    rng = numpy.random.default_rng(17)
    vectors = rng.normal(size=(9, 4))
    vectors[[1, 4]] = 0.0
    check_multi_view(vectors, numpy.array([0, 0, 0, 1, 1, 1, 1, -1, 2]))
    d_vectors, value = check_multi_view(vectors, numpy.array([0, 1, 2, -1, -1, 3, 4, 5, 6]))
    assert value == 0.0 and not d_vectors.any()
    check_multi_view(numpy.repeat(vectors[:3], 3, axis=0), numpy.array([0, 1, 2] * 3))
    with pytest.raises(ValueError, match="groups must have one entry per row"):
        MultiViewContrastiveLoss()(vectors, numpy.zeros(4, dtype="int64"))


def test_keyed_losses_make_their_targets_from_pair_keys():
    keys = ["a", "b", "a", None, "a", "b", "c"]
    assert TranslationContrastiveLoss().targets(keys) == [2, 5, 0, -1, 0, 1, -1]
    assert MultiViewContrastiveLoss().targets(keys) == [0, 1, 0, -1, 0, 1, 2]


def test_label_with_a_single_token_is_only_a_negative():
    vectors = numpy.random.default_rng(4).normal(size=(7, 5))
    labels = numpy.array([0, 0, 0, 1, 2, 2, 0])
    d_vectors, _ = check_lcl(vectors, labels)
    # token 3 is no anchor, but it is a negative of every anchor, so it gets a gradient
    assert numpy.abs(d_vectors[3]).max() > 0


def test_all_tokens_one_label():
    vectors = numpy.random.default_rng(5).normal(size=(9, 4))
    check_lcl(vectors, numpy.zeros(9, dtype="int64"))


@pytest.mark.parametrize("n_tokens", [0, 1, 5])
def test_no_positives_gives_zero(n_tokens):
    vectors = numpy.random.default_rng(6).normal(size=(n_tokens, 4))
    d_vectors, value = check_lcl(vectors, numpy.arange(n_tokens))
    assert value == 0.0 and not d_vectors.any()


def test_duplicate_vectors():
    rng = numpy.random.default_rng(7)
    vectors = numpy.repeat(rng.normal(size=(4, 6)), 3, axis=0)
    check_lcl(vectors, rng.integers(0, 3, size=12))
    check_tcl(vectors, paired_partners(rng, 5, 2))


def test_zero_vectors_give_finite_gradients():
    rng = numpy.random.default_rng(8)
    vectors = rng.normal(size=(10, 5))
    vectors[[2, 5, 6]] = 0.0
    check_lcl(vectors, rng.integers(0, 3, size=10))
    check_tcl(vectors, paired_partners(rng, 4, 2))
    all_zero = numpy.zeros((6, 5))
    check_lcl(all_zero, numpy.array([0, 0, 1, 1, 2, 2]))
    check_tcl(all_zero, numpy.array([1, 0, 3, 2, -1, -1]))


def test_tiny_vectors_below_the_norm_eps():
    rng = numpy.random.default_rng(9)
    vectors = rng.normal(size=(8, 4))
    vectors[1] *= 6e-9 / numpy.linalg.norm(vectors[1])  # unit[1] then has norm 0.6
    check_lcl(vectors, rng.integers(0, 2, size=8))
    check_tcl(vectors, paired_partners(rng, 3, 2))


def test_rows_without_partner_are_negatives_only():
    rng = numpy.random.default_rng(10)
    vectors = rng.normal(size=(6, 4))
    partners = numpy.array([1, 0, -1, -1, -1, -1])
    d_vectors, _ = check_tcl(vectors, partners)
    assert numpy.abs(d_vectors[2:]).max() > 0
    d_vectors, value = check_tcl(vectors, numpy.full(6, -1))
    assert value == 0.0 and not d_vectors.any()


def test_one_directional_partner():
    vectors = numpy.random.default_rng(11).normal(size=(4, 3))
    check_tcl(vectors, numpy.array([2, -1, -1, -1]))


def test_float32_input():
    rng = numpy.random.default_rng(12)
    vectors = rng.normal(size=(30, 12)).astype("float32")
    check_lcl(vectors, rng.integers(0, 4, size=30))
    check_tcl(vectors[:20], paired_partners(rng, 9, 2))


def test_low_temperature_is_stable():
    rng = numpy.random.default_rng(13)
    vectors = rng.normal(size=(12, 4)).astype("float32")
    d_vectors, value = LabelContrastiveLoss(0.005)(vectors, rng.integers(0, 3, size=12))
    assert numpy.isfinite(value) and numpy.isfinite(d_vectors).all()


def test_gradient_matches_finite_differences():
    rng = numpy.random.default_rng(14)
    vectors = rng.normal(size=(8, 3))
    labels = rng.integers(0, 3, size=8)
    loss = LabelContrastiveLoss(0.2)
    d_vectors, _ = loss(vectors, labels)
    step = 1e-6
    for row, col in [(0, 0), (3, 2), (7, 1)]:
        shifted = [vectors.copy(), vectors.copy()]
        shifted[0][row, col] += step
        shifted[1][row, col] -= step
        rise = loss.get_loss(shifted[0], labels) - loss.get_loss(shifted[1], labels)
        slope = rise / (2 * step)
        assert slope == pytest.approx(d_vectors[row, col], rel=1e-5, abs=1e-8)


def test_device_vectors_with_host_labels():
    """The pipeline's path: arrays from the current ops (cupy under require_gpu()),
    labels, partners and gold made on the host as numpy arrays."""
    ops = get_current_ops()
    rng = numpy.random.default_rng(16)
    host_vectors, labels = rng.normal(size=(14, 6)), rng.integers(0, 3, size=14)
    partners = paired_partners(rng, 5, 4)
    for loss, reference_fn, truths in [
        (LabelContrastiveLoss(), reference.label_contrastive, labels),
        (TranslationContrastiveLoss(), reference.translation_contrastive, partners),
    ]:
        d_vectors, value = loss(ops.asarray2f(host_vectors, dtype="float64"), truths)
        expected_value, expected_grad = reference_fn(host_vectors, truths, 0.1)
        assert_matches(value, expected_value)
        assert_matches(ops.to_numpy(d_vectors), expected_grad)
    logits = random_docs(rng, [4, 0, 3], 5)
    gold = [rng.integers(-1, 5, size=len(x)) for x in logits]
    device_probs = [ops.asarray2f(softmax(x), dtype="float64") for x in logits]
    d_logits, value = SentenceCrossEntropy()(device_probs, gold)
    expected_value, expected_grads = reference.sentence_cross_entropy(logits, gold)
    assert_matches(value, expected_value)
    assert_docs_match([ops.to_numpy(d) for d in d_logits], expected_grads)
    teacher = [softmax(x) for x in random_docs(rng, [4, 0, 3], 5)]
    d_student, value = DistillationLoss()(device_probs, teacher)
    expected_value, expected_grads = reference.distillation(logits, teacher)
    assert_matches(value, expected_value)
    assert_docs_match([ops.to_numpy(d) for d in d_student], expected_grads)


def test_get_grad_and_get_loss_agree_with_call():
    rng = numpy.random.default_rng(15)
    vectors, labels = rng.normal(size=(6, 3)), rng.integers(0, 2, size=6)
    loss = LabelContrastiveLoss()
    d_vectors, value = loss(vectors, labels)
    assert loss.get_loss(vectors, labels) == value
    numpy.testing.assert_array_equal(loss.get_grad(vectors, labels), d_vectors)


@pytest.mark.parametrize(
    "labels", [numpy.zeros(4, dtype="int64"), numpy.zeros((5, 1), dtype="int64")]
)
def test_label_contrastive_rejects_bad_shapes(labels):
    with pytest.raises(ValueError, match="one entry per row"):
        LabelContrastiveLoss()(numpy.ones((5, 3)), labels)
    with pytest.raises(ValueError, match="2d"):
        LabelContrastiveLoss()(numpy.ones(5), numpy.zeros(5, dtype="int64"))


@pytest.mark.parametrize(
    "partners,message",
    [
        ([1, 0, 3], "one entry per row"),
        ([1, 0, 5, -1], r"row index in \[0, 3\]"),
        ([1, 0, -2, -1], "row index"),
        ([1, 0, 2, -1], r"rows \[2\] are given themselves"),
    ],
)
def test_translation_contrastive_rejects_bad_partners(partners, message):
    with pytest.raises(ValueError, match=message):
        TranslationContrastiveLoss()(numpy.ones((4, 3)), numpy.array(partners))


def test_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature"):
        LabelContrastiveLoss(0.0)


def random_docs(rng, lengths, n_labels):
    return [rng.normal(size=(n, n_labels)) for n in lengths]


def softmax(logits):
    exp = numpy.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def assert_docs_match(actual, expected):
    assert [a.shape for a in actual] == [e.shape for e in expected]
    assert_matches(numpy.concatenate(actual), numpy.concatenate(expected))


DISTILLATION = [
    (DistillationLoss, reference.distillation),
    (KLDistillationLoss, reference.kl_distillation),
]


@pytest.mark.parametrize("loss,reference_fn", DISTILLATION)
@pytest.mark.parametrize("seed,lengths", [(0, [3, 1, 7]), (1, [5, 0, 12, 0, 2]), (2, [0])])
def test_distillation_matches_reference(loss, reference_fn, seed, lengths):
    """Value, and gradient w.r.t. the student's logits (the probabilities are their softmax)."""
    rng = numpy.random.default_rng(seed)
    logits = random_docs(rng, lengths, 5)
    truths = [softmax(x) for x in random_docs(rng, lengths, 5)]
    d_logits, value = loss()([softmax(x) for x in logits], truths)
    expected_value, expected_grads = reference_fn(logits, truths)
    assert_matches(value, expected_value)
    assert_docs_match(d_logits, expected_grads)


@pytest.mark.parametrize("loss", [DistillationLoss, KLDistillationLoss])
def test_distillation_of_identical_distributions_is_zero(loss):
    probs = [softmax(x) for x in random_docs(numpy.random.default_rng(3), [4, 2], 3)]
    d_logits, value = loss()(probs, [p.copy() for p in probs])
    assert abs(value) < 1e-12 and numpy.allclose(numpy.concatenate(d_logits), 0)
    assert loss()([], []) == ([], 0.0)


def test_kl_distillation_gradient_is_student_minus_teacher():
    """Also where the teacher is one-hot and the student gives its label ~0: finite."""
    student = softmax(numpy.array([[0.0, 12.0, 0.0], [1.0, 2.0, 3.0]], dtype="float32"))
    teacher = numpy.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]], dtype="float32")
    (d_logits,), _ = KLDistillationLoss()([student], [teacher])
    expected = (student - teacher) / 2  # mean over the Doc's 2 tokens
    numpy.testing.assert_allclose(d_logits, expected, atol=1e-6)


def test_mse_distillation_barely_moves_a_label_the_student_thinks_unlikely():
    """Why the KL variant exists: teacher says label 0, the student gives it 1e-4 and
    label 1 the rest; MSE's logit gradient for label 0 is ~1e4 times smaller than KL's."""
    student = numpy.array([[1e-4, 1 - 2e-4, 1e-4]])
    teacher = numpy.array([[1.0, 0.0, 0.0]])
    mse, kl = [loss()([student], [teacher])[0][0][0, 0] for loss in (DistillationLoss, KLDistillationLoss)]
    assert kl == pytest.approx(-1.0, abs=1e-3) and abs(mse) < 1e-3 * abs(kl)


@pytest.mark.parametrize("loss", [DistillationLoss, KLDistillationLoss])
def test_distillation_rejects_mismatched_label_sets(loss):
    with pytest.raises(ValueError, match="label sets"):
        loss()([numpy.ones((3, 5))], [numpy.ones((3, 9))])
    with pytest.raises(ValueError, match="2 guesses for 1"):
        loss()([numpy.ones((3, 5))] * 2, [numpy.ones((3, 5))])


@pytest.mark.parametrize(
    "seed,lengths,unlabelled",
    [(0, [4, 6, 1], 0.0), (1, [5, 0, 9, 3], 0.3), (2, [3, 3], 1.0), (3, [8, 2, 2], 0.6)],
)
def test_sentence_cross_entropy_matches_reference(seed, lengths, unlabelled):
    rng = numpy.random.default_rng(seed)
    logits = random_docs(rng, lengths, 6)
    truths = [
        numpy.where(rng.random(n) < unlabelled, -1, rng.integers(0, 6, size=n))
        for n in lengths
    ]
    d_logits, value = SentenceCrossEntropy()([softmax(x) for x in logits], truths)
    expected_value, expected_grads = reference.sentence_cross_entropy(logits, truths)
    assert_matches(value, expected_value)
    assert_docs_match(d_logits, expected_grads)


def test_sentence_cross_entropy_of_a_zero_probability_is_finite():
    probs = [numpy.array([[1.0, 0.0], [0.5, 0.5]], dtype="float32")]
    d_logits, value = SentenceCrossEntropy()(probs, [numpy.array([1, 0])])
    assert numpy.isfinite(value) and value > 10
    assert numpy.isfinite(d_logits[0]).all() and d_logits[0].dtype == numpy.float32


def test_sentence_cross_entropy_rejects_bad_labels():
    probs = [numpy.full((3, 4), 0.25)]
    with pytest.raises(ValueError, match="one label per row"):
        SentenceCrossEntropy()(probs, [numpy.array([0, 1])])
    with pytest.raises(ValueError, match=r"-1 or in \[0, 3\]"):
        SentenceCrossEntropy()(probs, [numpy.array([0, 1, 4])])
    with pytest.raises(ValueError, match="one label per row"):  # the same check for grid cells
        RelationContrastiveLoss()([numpy.zeros((3, 4))], [numpy.array([0, 1])])


def test_softmax_backprop_matches_autograd():
    import torch

    logits = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(5, 7, dtype=torch.float64)
    probs = torch.softmax(logits, dim=1)
    (probs * upstream).sum().backward()
    ours = softmax_backprop(probs.detach().numpy(), upstream.numpy())
    numpy.testing.assert_allclose(ours, logits.grad.numpy(), rtol=1e-10)


def random_batch(seed, lengths, kinds, n_tags=5, width=6, keys=None):
    """Vectors, logits and Targets of a batch: kinds[i] is "gold" (tags, some unknown),
    "soft" (a teacher's distributions) or "none"; the pair keys are `keys`, by default
    Docs 0/1, 2/3, ... share one and the last Doc has none."""
    rng = numpy.random.default_rng(seed)
    vectors = [rng.normal(size=(n, width)) for n in lengths]
    logits = random_docs(rng, lengths, n_tags)
    gold = [numpy.where(rng.random(n) < 0.2, -1, rng.integers(0, n_tags, size=n)) if k == "gold" else None
            for n, k in zip(lengths, kinds)]
    soft = [softmax(x) if k == "soft" else None for x, k in zip(random_docs(rng, lengths, n_tags), kinds)]
    if keys is None:
        keys = [f"k{i // 2}" for i in range(len(lengths) - 1)] + [None]
    return vectors, logits, Targets(gold, soft, keys)


@pytest.mark.parametrize(
    "seed,lengths,kinds",
    [
        (0, [5, 6, 3, 4, 2], ["gold"] * 5),
        (1, [4, 0, 7, 3, 3, 5], ["gold", "gold", "gold", "soft", "soft", "gold"]),
        (2, [3, 4, 6], ["soft", "soft", "none"]),
        (3, [6, 2, 5, 1], ["gold", "none", "gold", "gold"]),
    ],
)
def test_concner_loss_matches_reference(seed, lengths, kinds):
    """Eq. 8 + eq. 9 composed: value, gradient w.r.t. every token vector and logit."""
    vectors, logits, targets = random_batch(seed, lengths, kinds)
    loss = ConcnerLoss(0.5, 0.25, LabelContrastiveLoss(), TranslationContrastiveLoss(), KLDistillationLoss())
    (d_vectors, d_logits), value = loss(vectors, [softmax(x) for x in logits], targets)
    expected_value, expected_d_vectors, expected_d_logits = reference.concner_loss(
        vectors, logits, targets.gold, targets.soft, targets.keys, alpha=0.5, beta=0.25
    )
    assert_matches(value, expected_value)
    assert_docs_match(d_vectors, expected_d_vectors)
    assert_docs_match(d_logits, expected_d_logits)


@pytest.mark.parametrize(
    "seed,kinds,keys",
    [
        (0, ["gold"] * 7, ["a", "a", "a", "b", "b", "b", None]),
        (1, ["gold", "gold", "soft", "gold", "gold", "gold", "gold"], ["a", "a", "a", "a", "b", "b", "c"]),
        (2, ["gold", "none", "gold", "gold", "soft", "gold", "gold"], ["a", "b", "a", "b", "a", "a", "b"]),
    ],
)
def test_concner_loss_with_multi_view_contrast_matches_reference(seed, kinds, keys):
    """Eq. 8 with the multi-view contrast in place of TCL: every other Doc with the key
    (among the Docs with gold tags) is a positive."""
    vectors, logits, targets = random_batch(seed, [5, 6, 3, 4, 2, 7, 3], kinds, keys=keys)
    loss = ConcnerLoss(0.5, 0.25, LabelContrastiveLoss(), MultiViewContrastiveLoss(), KLDistillationLoss())
    (d_vectors, d_logits), value = loss(vectors, [softmax(x) for x in logits], targets)
    expected_value, expected_d_vectors, expected_d_logits = reference.concner_loss(
        vectors, logits, targets.gold, targets.soft, targets.keys, alpha=0.5, beta=0.25, all_views=True
    )
    assert_matches(value, expected_value)
    assert_docs_match(d_vectors, expected_d_vectors)
    assert_docs_match(d_logits, expected_d_logits)


def test_concner_loss_without_beta_or_a_term_leaves_it_out():
    vectors, logits, targets = random_batch(4, [5, 5, 4, 4, 3], ["gold"] * 5)
    probs = [softmax(x) for x in logits]
    ce_only = ConcnerLoss(0.5, 0.0, LabelContrastiveLoss(), TranslationContrastiveLoss(), DistillationLoss())
    (d_vectors, _), value = ce_only(vectors, probs, targets)
    assert value == pytest.approx(0.5 * SentenceCrossEntropy()(probs, targets.gold)[1])
    assert not numpy.concatenate(d_vectors).any()
    lcl_only = ConcnerLoss(0.5, 0.5, LabelContrastiveLoss(), None, DistillationLoss())
    (d_vectors, _), value = lcl_only(vectors, probs, targets)
    gold = numpy.concatenate(targets.gold)
    lcl = LabelContrastiveLoss()(numpy.concatenate(vectors)[gold >= 0], gold[gold >= 0])[1]
    assert value == pytest.approx(0.5 * SentenceCrossEntropy()(probs, targets.gold)[1] + 0.5 * lcl)


@pytest.mark.parametrize(
    "name,cls,settings",
    [
        ("spacy_concner.LabelContrastiveLoss.v1", LabelContrastiveLoss, {"temperature": 0.2}),
        (
            "spacy_concner.TranslationContrastiveLoss.v1",
            TranslationContrastiveLoss,
            {"temperature": 0.3},
        ),
        ("spacy_concner.DistillationLoss.v1", DistillationLoss, {}),
        ("spacy_concner.KLDistillationLoss.v1", KLDistillationLoss, {}),
    ],
)
def test_losses_resolve_from_config(name, cls, settings):
    loss = registry.resolve({"loss": {"@losses": name, **settings}})["loss"]
    assert isinstance(loss, cls)
    assert getattr(loss, "temperature", None) == settings.get("temperature")
    # installed, spaCy finds it without an import through the thinc_losses entry point
    assert name in {entry.name for entry in entry_points(group="thinc_losses")}


def test_multi_view_loss_resolves_from_config():
    """(Its entry point is checked against setup.py in test_entry_points.py.)"""
    config = {"loss": {"@losses": "spacy_concner.MultiViewContrastiveLoss.v1", "temperature": 0.3}}
    loss = registry.resolve(config)["loss"]
    assert isinstance(loss, MultiViewContrastiveLoss) and loss.temperature == 0.3


def random_grids(seed, sizes, n_labels=4, width=5, unknown=0.1, none_share=0.8):
    """Per grid of m words: logits (m*m, labels), projections (m*m, width) and cell
    labels, mostly None (0), some unknown (-1)."""
    rng = numpy.random.default_rng(seed)
    cells = [m * m for m in sizes]
    logits = random_docs(rng, cells, n_labels)
    projections = random_docs(rng, cells, width)
    truths = []
    for n in cells:
        labels = numpy.where(rng.random(n) < none_share, 0, rng.integers(1, n_labels, size=n))
        truths.append(numpy.where(rng.random(n) < unknown, -1, labels))
    return logits, projections, truths


@pytest.mark.parametrize(
    "seed,sizes,none_weight", [(0, [3], 0.2), (1, [4, 1, 5], 0.2), (2, [2, 0, 6], 1.0), (3, [3, 3], 0.0)]
)
def test_relation_loss_matches_reference(seed, sizes, none_weight):
    logits, _, truths = random_grids(seed, sizes)
    d_scores, value = RelationLoss(none_weight)([softmax(x) for x in logits], truths)
    expected_value, expected_grads = reference.relation_classification(logits, truths, none_weight)
    assert_matches(value, expected_value)
    assert_docs_match(d_scores, expected_grads)


def test_relation_loss_divides_by_the_labelled_cells_not_their_weights():
    probs = [numpy.full((4, 3), 1 / 3)]
    truths = [numpy.array([0, 0, 2, -1])]
    _, value = RelationLoss(0.5)(probs, truths)
    assert value == pytest.approx((0.5 + 0.5 + 1) * numpy.log(3) / 3)
    d_scores, value = RelationLoss()(probs, [numpy.full(4, -1)])
    assert value == 0.0 and not d_scores[0].any()
    with pytest.raises(ValueError, match="none_weight"):
        RelationLoss(-0.1)


def test_relation_contrast_anchors():
    """All non-None cells, and max(min_none, their count) None cells per grid (all of
    them if fewer), the same with the same seed."""
    truths = [numpy.array([0] * 20 + [1, 2, 2]), numpy.array([0] * 20 + [1] * 6),
              numpy.array([0, 0, 3, -1, -1]), numpy.array([-1, 0])]
    anchors = RelationContrastiveLoss(seed=5).anchors(truths)
    for truth, cells in zip(truths, anchors):
        assert (numpy.diff(cells) > 0).all()
        labelled = numpy.flatnonzero(truth > 0)
        assert set(labelled) <= set(cells) and (truth[cells] >= 0).all()
        n_none = int((truth[cells] == 0).sum())
        assert n_none == min(int((truth == 0).sum()), max(4, len(labelled)))
    again = RelationContrastiveLoss(seed=5).anchors(truths)
    assert all((a == b).all() for a, b in zip(anchors, again))
    other = RelationContrastiveLoss(seed=6).anchors(truths)
    assert any(len(a) != len(b) or (a != b).any() for a, b in zip(anchors, other))


@pytest.mark.parametrize("seed,sizes,temperature", [(0, [4], 0.1), (1, [5, 1, 3], 0.1), (2, [3, 0, 6], 0.5)])
def test_relation_contrastive_matches_reference(seed, sizes, temperature):
    """Value and gradient over the anchors the loss draws (drawn again with its seed)."""
    _, projections, truths = random_grids(seed, sizes)
    anchors = RelationContrastiveLoss(seed=seed).anchors(truths)
    loss = RelationContrastiveLoss(temperature, seed=seed)
    d_projections, value = loss(projections, truths)
    expected_value, expected_grads = reference.relation_contrastive(projections, truths, anchors, temperature)
    assert value > 0
    assert_matches(value, expected_value)
    assert_docs_match(d_projections, expected_grads)


@pytest.mark.parametrize("lambda_rc,lambda_sem", [(0.25, 0.25), (0.0, 0.5), (0.5, 0.0)])
def test_grid_loss_is_the_weighted_sum_of_its_terms(lambda_rc, lambda_sem):
    """L_rel + lambda_rc * L_rc + lambda_sem * L_sem, L_sem the multi-view contrast of the
    Docs' mean word vectors, its gradient passed to the words through the mean."""
    sizes = [3, 4, 2, 5]
    logits, projections, truths = random_grids(7, sizes)
    rng = numpy.random.default_rng(8)
    vectors = [rng.normal(size=(m, 6)) for m in sizes]
    keys = ["a", "a", "b", "b"]
    loss = GridLoss(RelationLoss(), RelationContrastiveLoss(seed=1), MultiViewContrastiveLoss(), lambda_rc, lambda_sem)
    (d_vectors, d_scores, d_projections), value = loss(
        (vectors, [softmax(x) for x in logits], projections), GridTargets(truths, keys))
    rel, d_rel = reference.relation_classification(logits, truths, 0.2)
    rc, d_rc = reference.relation_contrastive(projections, truths, RelationContrastiveLoss(seed=1).anchors(truths))
    sem, d_means = reference.multi_view_contrastive(numpy.stack([v.mean(axis=0) for v in vectors]), [0, 0, 1, 1])
    assert_matches(value, rel + lambda_rc * rc + lambda_sem * sem)
    assert_docs_match(d_scores, d_rel)
    assert_docs_match(d_vectors, [lambda_sem * numpy.tile(d / len(v), (len(v), 1)) for d, v in zip(d_means, vectors)])
    if lambda_rc:
        assert_docs_match(d_projections, [lambda_rc * d for d in d_rc])
    else:
        assert d_projections is None


@pytest.mark.parametrize(
    "name,cls,settings",
    [
        ("spacy_concner.RelationLoss.v1", RelationLoss, {"none_weight": 0.3}),
        ("spacy_concner.RelationContrastiveLoss.v1", RelationContrastiveLoss,
         {"temperature": 0.2, "min_none": 2, "seed": 3}),
    ],
)
def test_relation_losses_resolve_from_config(name, cls, settings):
    """(Their entry points are checked against setup.py in test_entry_points.py.)"""
    loss = registry.resolve({"loss": {"@losses": name, **settings}})["loss"]
    assert isinstance(loss, cls)
    assert all(getattr(loss, key) == value for key, value in settings.items() if key != "seed")
