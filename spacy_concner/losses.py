"""The ConCNER losses (paper eqs. 3-7 and 9) and mCL-NER's multi-view semantic contrast,
relation classification and relation contrast as Thinc `Loss` objects; ConcnerLoss, which
composes them into the `concner` component's loss (eq. 8), and GridLoss, the `mcl_ner`
component's.

Each `__call__` returns `(gradient, value)` from one pass, the gradient with respect to
what the model's backprop takes (vectors, or pre-softmax logits). Array code goes through
the inputs' array module, so the same code runs on numpy and cupy arrays.
"""
from dataclasses import dataclass
from typing import Callable, Hashable, List, Optional, Tuple

import numpy
from spacy.util import registry
from thinc.api import get_array_module
from thinc.backends import get_array_ops
from thinc.loss import Loss
from thinc.types import Floats1d, Floats2d, Ints1d

from .grid import NONE_ID
from .pairs import group_ids, partner_rows

# As in torch.nn.functional.normalize: x / max(||x||, eps); a zero vector maps to 0.
NORM_EPS = 1e-8
# log(p) is clipped at log(MIN_PROB) so that p = 0 gives a finite cross-entropy.
MIN_PROB = 1e-12


class OnePassLoss(Loss):
    """A loss whose gradient and value come from one computation in `__call__`."""

    def get_grad(self, guesses, truths):
        return self(guesses, truths)[0]

    def get_loss(self, guesses, truths) -> float:
        return self(guesses, truths)[1]


class ContrastiveLoss(OnePassLoss):
    """Cosine similarities divided by a temperature (tau in eqs. 4 and 6)."""

    def __init__(self, temperature: float = 0.1):
        if not temperature > 0:
            raise ValueError(f"the temperature must be positive, got {temperature}")
        self.temperature = temperature


class LabelContrastiveLoss(ContrastiveLoss):
    """LCL (eqs. 4-5): tokens with the same label attract, all others repel.

    vectors: (M, d) token vectors h; labels: (M,) label ids. The positives of token i
    are the other tokens with its label; the value is the mean over the tokens that
    have at least one positive (0 if none has).
    """

    def __call__(self, vectors: Floats2d, labels: Ints1d) -> Tuple[Floats2d, float]:
        _check_rows(vectors, labels, "labels")
        return supervised_contrastive(vectors, _same_id_positives(vectors, labels), self.temperature)


def _same_id_positives(vectors: Floats2d, ids: Ints1d):
    """(n, n) boolean: rows i != j with the same id; a negative id has no positive."""
    xp = get_array_module(vectors)
    ids = xp.asarray(ids)  # ids made on the host, vectors on the device
    positives = (ids[:, None] == ids[None, :]) & (ids >= 0)[:, None]
    positives[xp.diag_indices(len(ids))] = False
    return positives


class KeyedContrastiveLoss(ContrastiveLoss):
    """A contrastive loss over sentence vectors whose positives follow from pair keys."""

    def targets(self, keys: List[Optional[Hashable]]) -> List[int]:
        """What __call__ takes besides the vectors, from each row's pair key (None: unpaired)."""
        raise NotImplementedError


class TranslationContrastiveLoss(KeyedContrastiveLoss):
    """TCL (eqs. 6-7): a sentence vector attracts its translation's, repels the others.

    sentence_vectors: (S, d) mean-pooled sentence vectors r; partners: (S,) the row of
    each sentence's translation, -1 if it is not in the batch (the row is then still a
    negative for the others). The value is the mean over the rows with a partner.
    """

    def __call__(
        self, sentence_vectors: Floats2d, partners: Ints1d
    ) -> Tuple[Floats2d, float]:
        _check_rows(sentence_vectors, partners, "partners")
        xp = get_array_module(sentence_vectors)
        partners = xp.asarray(partners)
        rows = xp.arange(len(partners))
        if bool(((partners < -1) | (partners >= len(partners))).any()):
            raise ValueError(
                f"partners must be -1 or a row index in [0, {len(partners) - 1}], "
                f"got {partners.tolist()}"
            )
        if bool((partners == rows).any()):
            selfish = rows[partners == rows].tolist()
            raise ValueError(f"rows {selfish} are given themselves as translation partner")
        positives = partners[:, None] == rows[None, :]
        return supervised_contrastive(sentence_vectors, positives, self.temperature)

    def targets(self, keys: List[Optional[Hashable]]) -> List[int]:
        """Each row's partner: the first other row with its key, -1 if none."""
        return partner_rows(keys)


class MultiViewContrastiveLoss(KeyedContrastiveLoss):
    """Multi-view semantic contrast (mCL-NER): TCL with all the other views of a sentence
    as its positives.

    sentence_vectors: (S, d) sentence vectors; groups: (S,) the group of each row, -1 for
    a row in none. The positives of row i are the other rows of its group (the source, its
    code-switched view, its translations), every other row of the batch is a negative;
    L_i is the mean over the positives, as in LCL. The value is the mean over the rows
    with at least one positive. With groups of two rows it is TCL.
    """

    def __call__(self, sentence_vectors: Floats2d, groups: Ints1d) -> Tuple[Floats2d, float]:
        _check_rows(sentence_vectors, groups, "groups")
        positives = _same_id_positives(sentence_vectors, groups)
        return supervised_contrastive(sentence_vectors, positives, self.temperature)

    def targets(self, keys: List[Optional[Hashable]]) -> List[int]:
        """Each row's group: the rows with one key share one id, an unpaired row gets -1."""
        return group_ids(keys)


def supervised_contrastive(
    vectors: Floats2d, positives, temperature: float
) -> Tuple[Floats2d, float]:
    """Supervised contrastive loss over cosine similarities, and its exact gradient.

    positives: (n, n) boolean, False on the diagonal. For row i with positives P(i):
    L_i = mean_{p in P(i)} [logsumexp_{k != i} s_ik - s_ip], s = cos / temperature;
    the value is the mean of L_i over the rows with |P(i)| >= 1.
    """
    xp = get_array_module(vectors)
    n_positives = positives.sum(axis=1)
    anchors = n_positives > 0
    n_anchors = int(anchors.sum())
    if n_anchors == 0:
        return xp.zeros_like(vectors), 0.0
    unit, backprop_normalize = _normalize(vectors)
    sims = (unit @ unit.T) / temperature
    # A finite mask: a row with no other row gives no NaN (it has no positive anyway).
    sims[xp.diag_indices(len(sims))] = xp.finfo(sims.dtype).min / 2
    row_max = sims.max(axis=1, keepdims=True)
    exp_sims = xp.exp(sims - row_max)
    denominators = exp_sims.sum(axis=1, keepdims=True)
    log_denominators = xp.log(denominators) + row_max
    targets = positives / xp.maximum(n_positives, 1)[:, None].astype(sims.dtype)
    row_losses = log_denominators[:, 0] - (targets * sims).sum(axis=1)
    value = float((row_losses * anchors).sum()) / n_anchors
    d_sims = (exp_sims / denominators - targets) * anchors[:, None].astype(sims.dtype)
    d_unit = ((d_sims + d_sims.T) @ unit) / (temperature * n_anchors)
    return backprop_normalize(d_unit), value


def _normalize(vectors: Floats2d):
    """Rows divided by max(norm, NORM_EPS), and the backward pass of that."""
    xp = get_array_module(vectors)
    norms = xp.sqrt((vectors * vectors).sum(axis=1, keepdims=True))
    scaled = norms > NORM_EPS
    denominators = xp.where(scaled, norms, NORM_EPS)
    unit = vectors / denominators

    def backprop(d_unit: Floats2d) -> Floats2d:
        radial = unit * (unit * d_unit).sum(axis=1, keepdims=True)
        return (d_unit - radial * scaled) / denominators

    return unit, backprop


def _check_rows(vectors: Floats2d, per_row, name: str) -> None:
    if vectors.ndim != 2:
        raise ValueError(f"expected a 2d array of vectors, got shape {vectors.shape}")
    if per_row.ndim != 1 or len(per_row) != len(vectors):
        raise ValueError(
            f"{name} must have one entry per row: {len(vectors)} rows but {name} has "
            f"shape {per_row.shape}"
        )


class DistillationLoss(OnePassLoss):
    """Knowledge distillation (eq. 9): MSE between student and teacher distributions.

    guesses, truths: one (tokens, labels) array per Doc of student and teacher label
    probabilities. The value is the mean over Docs of the mean over tokens of the mean
    over labels of (guess - truth)^2; Docs with no token are not counted. The gradient
    is with respect to the student's pre-softmax logits (guesses = softmax(logits)), as
    thinc's Softmax layer and spaCy v4's get_teacher_student_loss take it.
    """

    def __call__(
        self, guesses: List[Floats2d], truths: List[Floats2d]
    ) -> Tuple[List[Floats2d], float]:
        _check_docs(guesses, truths, _distributions_mismatch)
        if not guesses:
            return [], 0.0
        xp = get_array_module(guesses[0])
        lengths = [len(guess) for guess in guesses]
        student = xp.concatenate(guesses)
        teacher = xp.concatenate([xp.asarray(t) for t in truths]).astype(student.dtype)
        terms, d_logits = self.token_terms(student, teacher)
        weights = _token_weights(xp.ones(len(student), dtype=bool), lengths)
        weights = weights.astype(student.dtype)[:, None]
        return _split(xp, weights * d_logits, lengths), float((weights * terms).sum())

    def token_terms(self, student: Floats2d, teacher: Floats2d) -> Tuple[Floats2d, Floats2d]:
        """Per (token, label) terms whose row sum is the token's loss, and the gradient of
        the token's loss w.r.t. the student's logits."""
        diffs = student - teacher
        n_labels = diffs.shape[1]
        return diffs * diffs / n_labels, softmax_backprop(student, 2 * diffs / n_labels)


class KLDistillationLoss(DistillationLoss):
    """Distillation with KL(teacher || student) per token instead of eq. 9's MSE, same
    averaging. Its gradient w.r.t. the logits is student - teacher (times the teacher
    row's sum, 1), which does not vanish where the student gives the teacher's label
    little probability; MSE's does (it is scaled by the student's probabilities), and a
    student can get stuck labelling every entity with one type.
    """

    def token_terms(self, student: Floats2d, teacher: Floats2d) -> Tuple[Floats2d, Floats2d]:
        xp = get_array_module(student)
        log_ratio = xp.log(xp.maximum(teacher, MIN_PROB)) - xp.log(xp.maximum(student, MIN_PROB))
        return teacher * log_ratio, student * teacher.sum(axis=1, keepdims=True) - teacher


def softmax_backprop(probs: Floats2d, d_probs: Floats2d) -> Floats2d:
    """Gradient w.r.t. the logits of a row-wise softmax, given it w.r.t. its output."""
    return probs * (d_probs - (d_probs * probs).sum(axis=1, keepdims=True))


class SentenceCrossEntropy(OnePassLoss):
    """Cross-entropy (eq. 3): mean over tokens of a Doc, then over Docs.

    probs: one (tokens, labels) array of softmax outputs per Doc; truths: one (tokens,)
    array of gold label ids per Doc, -1 for a token without gold label (ignored). Docs
    without any labelled token are not counted. The gradient is with respect to the
    pre-softmax logits, as thinc's Softmax layer expects.
    """

    def __call__(
        self, probs: List[Floats2d], truths: List[Ints1d]
    ) -> Tuple[List[Floats2d], float]:
        return weighted_cross_entropy(probs, truths, lambda gold, lengths: _token_weights(gold >= 0, lengths))


def weighted_cross_entropy(
    probs: List[Floats2d], truths: List[Ints1d], weigh: Callable[[Ints1d, List[int]], Floats1d]
) -> Tuple[List[Floats2d], float]:
    """sum over all rows of -weight * log p(gold), and its gradient w.r.t. the logits.

    probs: one (rows, labels) array of softmax outputs per item; truths: one (rows,)
    array of gold label ids per item, -1 for a row without gold label. weigh(gold, lengths)
    gives each row of the concatenated items its weight (0 where gold is -1).
    """
    _check_docs(probs, truths, _row_labels_mismatch)
    if not probs:
        return [], 0.0
    xp = get_array_module(probs[0])
    lengths = [len(item_probs) for item_probs in probs]
    flat_probs = xp.concatenate(probs)
    gold = xp.concatenate([xp.asarray(t) for t in truths]).astype("int64", copy=False)
    if bool((gold >= flat_probs.shape[1]).any() | (gold < -1).any()):
        raise ValueError(
            f"gold label ids must be -1 or in [0, {flat_probs.shape[1] - 1}]"
        )
    weights = weigh(gold, lengths).astype(flat_probs.dtype)
    gold_cells = (xp.arange(len(gold)), xp.maximum(gold, 0))
    gold_probs = flat_probs[gold_cells]
    value = -float((weights * xp.log(xp.maximum(gold_probs, MIN_PROB))).sum())
    d_logits = flat_probs * weights[:, None]
    d_logits[gold_cells] -= weights
    return _split(xp, d_logits, lengths), value


class RelationLoss(OnePassLoss):
    """mCL-NER's relation classification: weighted cross-entropy over the labelled cells
    of all the grids of a batch.

    probs: one (cells, labels) array of softmax outputs per grid; truths: one (cells,)
    array of cell label ids per grid (grid.py), -1 for a cell without gold label. With M
    the labelled cells of the batch: L = -(1 / |M|) sum_{c in M} w(y_c) log p_c(y_c),
    w(None) = none_weight, 1 for the other labels (None is most of a grid's cells). The
    gradient is with respect to the pre-softmax scores.
    """

    def __init__(self, none_weight: float = 0.2):
        if not none_weight >= 0:
            raise ValueError(f"none_weight must be at least 0, got {none_weight}")
        self.none_weight = none_weight

    def __call__(
        self, probs: List[Floats2d], truths: List[Ints1d]
    ) -> Tuple[List[Floats2d], float]:
        return weighted_cross_entropy(probs, truths, self.cell_weights)

    def cell_weights(self, gold: Ints1d, lengths: List[int]) -> Floats1d:
        xp = get_array_module(gold)
        labelled = gold >= 0
        weights = xp.where(gold == NONE_ID, self.none_weight, 1.0) * labelled
        return weights / max(int(labelled.sum()), 1)


class RelationContrastiveLoss(LabelContrastiveLoss):
    """mCL-NER's relation contrast: LCL over the projected relation vectors of a sample
    of the batch's grid cells.

    projections: one (cells, width) array per grid; truths: one (cells,) array of cell
    label ids per grid, -1 for a cell without gold label. The anchors are every cell of a
    grid with a label other than None, and K of its None cells drawn at random, K = the
    grid's count of other cells but at least min_none (all its None cells if it has
    fewer). The positives of an anchor are the other anchors with its label (the cells of
    an entity in a sentence and in its code-switched view are alike); every other anchor
    is a negative; the value is the mean over the anchors with a positive. The draws come
    from a generator seeded with `seed`, so a training run draws the same cells again.
    """

    def __init__(self, temperature: float = 0.1, min_none: int = 4, seed: int = 0):
        super().__init__(temperature)
        self.min_none = min_none
        self.rng = numpy.random.default_rng(seed)

    def __call__(
        self, projections: List[Floats2d], truths: List[Ints1d]
    ) -> Tuple[List[Floats2d], float]:
        _check_docs(projections, truths, _row_labels_mismatch)
        if not projections:
            return [], 0.0
        xp = get_array_module(projections[0])
        anchors = [xp.asarray(cells) for cells in self.anchors(truths)]
        vectors = xp.concatenate([grid[cells] for grid, cells in zip(projections, anchors)])
        labels = xp.concatenate([xp.asarray(truth)[cells] for truth, cells in zip(truths, anchors)])
        d_anchors, value = super().__call__(vectors, labels)
        d_projections = [xp.zeros_like(grid) for grid in projections]
        for d_grid, cells, d_cells in zip(d_projections, anchors, _split(xp, d_anchors, [len(a) for a in anchors])):
            d_grid[cells] = d_cells
        return d_projections, value

    def anchors(self, truths: List[Ints1d]) -> List[Ints1d]:
        """The anchor cells of each grid, in cell order (draws from the generator)."""
        chosen = []
        for truth in truths:
            truth = get_array_ops(truth).to_numpy(truth)
            labelled, none = numpy.flatnonzero(truth > NONE_ID), numpy.flatnonzero(truth == NONE_ID)
            n_none = min(len(none), max(self.min_none, len(labelled)))
            drawn = self.rng.choice(none, size=n_none, replace=False)
            chosen.append(numpy.sort(numpy.concatenate([labelled, drawn])))
        return chosen


def _token_weights(counted, lengths: List[int]) -> Floats1d:
    """Per-token weights that turn a sum into a mean over the counted tokens of each
    Doc, then over the Docs with at least one counted token.

    counted: (sum(lengths),) boolean over the concatenated tokens of all Docs.
    """
    xp = get_array_module(counted)
    ends = numpy.cumsum(lengths, dtype="int64")
    counted_before = xp.concatenate([xp.zeros(1, dtype="int64"), counted.cumsum()])
    per_doc = counted_before[xp.asarray(ends)] - counted_before[xp.asarray(ends - lengths)]
    n_docs = int((per_doc > 0).sum())
    per_token = xp.repeat(xp.maximum(per_doc, 1), lengths)
    return counted / (per_token * max(n_docs, 1))


def _split(xp, array, lengths: List[int]) -> List:
    return xp.split(array, numpy.cumsum(lengths)[:-1].tolist())


def _check_docs(guesses: List, truths: List, mismatch: Callable[..., str]) -> None:
    """mismatch(guess, truth) says what is wrong with one Doc's arrays, or ''."""
    if len(guesses) != len(truths):
        raise ValueError(f"got {len(guesses)} guesses for {len(truths)} Docs of truths")
    for i, (guess, truth) in enumerate(zip(guesses, truths)):
        problem = mismatch(guess, truth)
        if problem:
            raise ValueError(f"Doc {i}: {problem}")


def _distributions_mismatch(guess: Floats2d, truth: Floats2d) -> str:
    if guess.ndim == 2 and guess.shape == truth.shape:
        return ""
    return (
        f"student probabilities have shape {guess.shape} but the teacher's have "
        f"shape {truth.shape}; do the label sets match?"
    )


def _row_labels_mismatch(rows: Floats2d, labels: Ints1d) -> str:
    """One label per row of a 2D array: gold tags of probabilities, cell labels of projections."""
    if rows.ndim == 2 and labels.shape == (len(rows),):
        return ""
    return f"an array of shape {rows.shape} needs one label per row, got labels of shape {labels.shape}"


@dataclass
class Targets:
    """What a batch of Docs is trained towards, one entry per Doc: gold IOB2 tag ids per
    token (-1 where unknown; None for a Doc without gold), a teacher's label
    distributions (None for a Doc without), and the pair key that ties a sentence to its
    translation (None if unpaired)."""

    gold: List[Optional[Ints1d]]
    soft: List[Optional[Floats2d]]
    keys: List[Optional[Hashable]]


class ConcnerLoss:
    """The loss of the `concner` component over a batch: alpha * CE + beta * (LCL + TCL)
    over the Docs with gold tags (eq. 8), plus the distillation loss over the Docs with a
    teacher's distributions (eq. 9). A contrastive loss that is None is left out; the
    sentence-level one is TCL or the multi-view contrast, its targets made from the keys.

    __call__(vectors, probs, targets) returns ((d_vectors, d_logits), value): one array
    per Doc of the gradient w.r.t. the token vectors and w.r.t. the pre-softmax logits,
    what the token classifier's backprop takes.
    """

    def __init__(
        self,
        alpha: float,
        beta: float,
        label_loss: Optional[LabelContrastiveLoss],
        translation_loss: Optional[KeyedContrastiveLoss],
        distillation_loss: DistillationLoss,
    ):
        self.alpha = alpha
        self.beta = beta
        self.label_loss = label_loss if beta else None
        self.translation_loss = translation_loss if beta else None
        self.distillation_loss = distillation_loss
        self.cross_entropy = SentenceCrossEntropy()

    def __call__(
        self, vectors: List[Floats2d], probs: List[Floats2d], targets: Targets
    ) -> Tuple[Tuple[List[Floats2d], List[Floats2d]], float]:
        xp = get_array_module(probs[0])
        lengths = [len(doc_probs) for doc_probs in probs]
        flat_vectors = xp.concatenate(vectors)
        d_vectors = xp.zeros_like(flat_vectors)
        d_logits = xp.zeros_like(xp.concatenate(probs))
        value = 0.0
        gold_rows = [i for i, gold in enumerate(targets.gold) if gold is not None]
        if gold_rows:
            gold = xp.concatenate([_gold_or_unknown(xp, g, n) for g, n in zip(targets.gold, lengths)])
            d_ce, ce = self.cross_entropy([probs[i] for i in gold_rows], [targets.gold[i] for i in gold_rows])
            d_logits[_token_rows(lengths, gold_rows)] += self.alpha * xp.concatenate(d_ce)
            value += self.alpha * ce
            if self.label_loss is not None:
                labelled = gold >= 0
                d_tokens, lcl = self.label_loss(flat_vectors[labelled], gold[labelled])
                d_vectors[labelled] += self.beta * d_tokens
                value += self.beta * lcl
            if self.translation_loss is not None:
                d_tcl, tcl = sentence_contrast(self.translation_loss, flat_vectors, lengths, gold_rows, targets.keys)
                d_vectors += self.beta * d_tcl
                value += self.beta * tcl
        soft_rows = [i for i, soft in enumerate(targets.soft) if soft is not None]
        if soft_rows:
            d_kd, kd = self.distillation_loss([probs[i] for i in soft_rows], [targets.soft[i] for i in soft_rows])
            d_logits[_token_rows(lengths, soft_rows)] += xp.concatenate(d_kd)
            value += kd
        return (_split(xp, d_vectors, lengths), _split(xp, d_logits, lengths)), value


def sentence_contrast(
    loss: KeyedContrastiveLoss, flat_vectors: Floats2d, lengths: List[int], rows: List[int], keys: List[Optional[Hashable]]
) -> Tuple[Floats2d, float]:
    """A sentence-level contrast (TCL or multi-view) over the given non-empty Docs,
    sentence vector = mean token vector; the gradient w.r.t. all the batch's token vectors
    (flat_vectors: the Docs' token vectors concatenated, lengths: tokens per Doc)."""
    rows = [i for i in rows if lengths[i]]
    d_vectors = get_array_module(flat_vectors).zeros_like(flat_vectors)
    if len(rows) < 2:
        return d_vectors, 0.0
    ops = get_array_ops(flat_vectors)
    tokens = _token_rows(lengths, rows)
    row_lengths = ops.asarray1i([lengths[i] for i in rows])
    sentences = ops.reduce_mean(flat_vectors[tokens], row_lengths)
    targets = ops.asarray1i(loss.targets([keys[i] for i in rows]))
    d_sentences, value = loss(sentences, targets)
    d_vectors[tokens] = ops.backprop_reduce_mean(d_sentences, row_lengths)
    return d_vectors, value


@dataclass
class GridTargets:
    """What a batch is trained towards by the `mcl_ner` component: per grid (each Doc's
    grids in order), the gold label id of each cell (-1 where unknown); per Doc, the pair
    key that ties a sentence to its views (None if unpaired)."""

    cells: List[Ints1d]
    keys: List[Optional[Hashable]]


class GridLoss:
    """The loss of the `mcl_ner` component over a batch: L_rel + lambda_rc * L_rc +
    lambda_sem * L_sem, with L_rel the relation classification loss over all the grids'
    labelled cells, L_rc the relation contrast over their projections, and L_sem the
    sentence-level contrast (mCL-NER's multi-view semantic contrast) over the mean word
    vectors of the batch's Docs, grouped by pair key. A contrast that is None, or whose
    weight is 0, is left out.

    __call__((vectors, probs, projections), targets) returns ((d_vectors, d_scores,
    d_projections), value): one array per Doc of the gradient w.r.t. the word vectors, one
    per grid w.r.t. the pre-softmax cell scores and w.r.t. the projections (None when L_rc
    is left out), what the grid classifier's backprop takes.
    """

    def __init__(
        self,
        relation_loss: RelationLoss,
        relation_contrast: Optional[RelationContrastiveLoss],
        semantic_loss: Optional[KeyedContrastiveLoss],
        lambda_rc: float,
        lambda_sem: float,
    ):
        self.relation_loss = relation_loss
        self.relation_contrast = relation_contrast if lambda_rc else None
        self.semantic_loss = semantic_loss if lambda_sem else None
        self.lambda_rc = lambda_rc
        self.lambda_sem = lambda_sem

    def __call__(self, scores, targets: GridTargets):
        vectors, probs, projections = scores
        xp = get_array_module(vectors[0])
        d_scores, value = self.relation_loss(probs, targets.cells)
        d_projections = None
        if self.relation_contrast is not None and projections is not None:
            d_rc, rc = self.relation_contrast(projections, targets.cells)
            d_projections = [self.lambda_rc * d for d in d_rc]
            value += self.lambda_rc * rc
        lengths = [len(doc_vectors) for doc_vectors in vectors]
        flat_vectors = xp.concatenate(vectors)
        d_vectors = xp.zeros_like(flat_vectors)
        if self.semantic_loss is not None:
            rows = list(range(len(vectors)))
            d_sem, sem = sentence_contrast(self.semantic_loss, flat_vectors, lengths, rows, targets.keys)
            d_vectors += self.lambda_sem * d_sem
            value += self.lambda_sem * sem
        return (_split(xp, d_vectors, lengths), d_scores, d_projections), value


def _gold_or_unknown(xp, gold: Optional[Ints1d], length: int) -> Ints1d:
    return xp.asarray(gold) if gold is not None else xp.full(length, -1, dtype="int32")


def _token_rows(lengths: List[int], docs: List[int]):
    """The rows of the given Docs' tokens in the concatenation of all Docs' tokens."""
    starts = numpy.cumsum([0] + lengths[:-1])
    return numpy.concatenate([numpy.arange(starts[i], starts[i] + lengths[i]) for i in docs]).astype("int64")


@registry.losses("spacy_concner.LabelContrastiveLoss.v1")
def configure_label_contrastive_loss(temperature: float = 0.1) -> LabelContrastiveLoss:
    """LCL (eqs. 4-5): tokens with the same gold tag attract, all others repel."""
    return LabelContrastiveLoss(temperature=temperature)


@registry.losses("spacy_concner.TranslationContrastiveLoss.v1")
def configure_translation_contrastive_loss(
    temperature: float = 0.1,
) -> TranslationContrastiveLoss:
    """TCL (eqs. 6-7): a sentence vector attracts its translation's (the first other row
    with its pair key), repels the other sentences of the batch."""
    return TranslationContrastiveLoss(temperature=temperature)


@registry.losses("spacy_concner.MultiViewContrastiveLoss.v1")
def configure_multi_view_contrastive_loss(temperature: float = 0.1) -> MultiViewContrastiveLoss:
    """mCL-NER's semantic contrast: each sentence vector attracts all the other views with
    its pair key (source, code-switched, translations) and repels the other sentences of
    the batch; TCL when every key has two views."""
    return MultiViewContrastiveLoss(temperature=temperature)


@registry.losses("spacy_concner.DistillationLoss.v1")
def configure_distillation_loss() -> DistillationLoss:
    """Distillation (eq. 9): MSE between the student's and the teacher's distributions."""
    return DistillationLoss()


@registry.losses("spacy_concner.KLDistillationLoss.v1")
def configure_kl_distillation_loss() -> KLDistillationLoss:
    """Distillation with KL(teacher || student) per token in place of eq. 9's MSE."""
    return KLDistillationLoss()


@registry.losses("spacy_concner.RelationLoss.v1")
def configure_relation_loss(none_weight: float = 0.2) -> RelationLoss:
    """mCL-NER's relation classification: cross-entropy over the labelled cells of the
    batch's word-pair grids, the None cells weighted by none_weight."""
    return RelationLoss(none_weight=none_weight)


@registry.losses("spacy_concner.RelationContrastiveLoss.v1")
def configure_relation_contrastive_loss(
    temperature: float = 0.1, min_none: int = 4, seed: int = 0
) -> RelationContrastiveLoss:
    """mCL-NER's relation contrast: cells with the same label attract, over the non-None
    cells of the batch's grids and a seeded draw of max(min_none, that many) None cells
    per grid."""
    return RelationContrastiveLoss(temperature=temperature, min_none=min_none, seed=seed)
