"""Plain-PyTorch autograd versions of the ConCNER losses, written from the paper's
equations (3, 4-5, 6-7, 9) term by term, and of mCL-NER's multi-view semantic contrast,
as an independent check of spacy_concner.losses. Loops over tokens on purpose: clarity,
not speed.

Each function takes numpy arrays and returns (value, gradient) as float64 numpy.
"""
from typing import List, Tuple

import numpy
import torch
import torch.nn.functional as F


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (F.normalize(a, dim=0, eps=1e-8) * F.normalize(b, dim=0, eps=1e-8)).sum()


def _contrastive_row(h: torch.Tensor, i: int, positives: List[int], tau: float):
    """-1/|P| sum_p log( exp(sim(h_i,h_p)/tau) / sum_{k != i} exp(sim(h_i,h_k)/tau) )"""
    denominator = sum(torch.exp(_cos(h[i], h[k]) / tau) for k in range(len(h)) if k != i)
    terms = [-torch.log(torch.exp(_cos(h[i], h[p]) / tau) / denominator) for p in positives]
    return sum(terms) / len(positives)


def label_contrastive(vectors, labels, tau: float = 0.1) -> Tuple[float, numpy.ndarray]:
    """Eqs. 4-5, averaged over the tokens that have at least one positive."""
    h = _leaf(vectors)
    return _value_and_grad(_same_label_rows(h, list(labels), tau), h)


def _same_label_rows(h: torch.Tensor, labels: List[int], tau: float) -> List[torch.Tensor]:
    """The terms of the rows with a positive, the other rows with their label."""
    row_losses = []
    for i, label in enumerate(labels):
        positives = [p for p, other in enumerate(labels) if p != i and other == label]
        if positives:
            row_losses.append(_contrastive_row(h, i, positives, tau))
    return row_losses


def translation_contrastive(vectors, partners, tau: float = 0.1):
    """Eqs. 6-7, averaged over the sentences whose translation is in the batch."""
    r = _leaf(vectors)
    row_losses = [
        _contrastive_row(r, i, [int(partner)], tau)
        for i, partner in enumerate(partners)
        if partner >= 0
    ]
    return _value_and_grad(row_losses, r)


def multi_view_contrastive(vectors, groups, tau: float = 0.1):
    """mCL-NER's semantic contrast as TCL over all views: the positives of row i are the
    other rows of its group (-1: in none); averaged over the rows with a positive."""
    r = _leaf(vectors)
    row_losses = []
    for i, group in enumerate(groups):
        positives = [p for p, other in enumerate(groups) if p != i and group >= 0 and other == group]
        if positives:
            row_losses.append(_contrastive_row(r, i, positives, tau))
    return _value_and_grad(row_losses, r)


def distillation(logits, truths) -> Tuple[float, List[numpy.ndarray]]:
    """Eq. 9: mean over sentences of the mean over tokens of MSE over the labels between
    the student's softmax(logits) and the teacher's distributions; gradient w.r.t. the
    student's logits."""
    leaves = [_leaf(doc_logits) for doc_logits in logits]
    doc_losses = [_mse_doc(torch.softmax(z, dim=1), truth) for z, truth in zip(leaves, truths) if len(truth)]
    return _value_and_grads(doc_losses, leaves)


def kl_distillation(logits, truths) -> Tuple[float, List[numpy.ndarray]]:
    """Eq. 9 with KL(teacher || student) per token in place of the MSE."""
    leaves = [_leaf(doc_logits) for doc_logits in logits]
    doc_losses = [_kl_doc(z, truth) for z, truth in zip(leaves, truths) if len(truth)]
    return _value_and_grads(doc_losses, leaves)


def _mse_doc(student: torch.Tensor, truth) -> torch.Tensor:
    return sum(F.mse_loss(student[i], torch.tensor(truth[i])) for i in range(len(truth))) / len(truth)


def _kl_doc(logits: torch.Tensor, truth) -> torch.Tensor:
    return F.kl_div(torch.log_softmax(logits, dim=1), torch.tensor(truth), reduction="sum") / len(truth)


def concner_loss(vectors, logits, gold, soft, keys, alpha, beta, tau=0.1, all_views=False):
    """Eq. 8 over the Docs with gold tags, plus eq. 9 (KL) over the Docs with soft
    targets, for one batch; gradients w.r.t. every Doc's token vectors and logits.
    gold[i]: tag per token (-1 unknown) or None; soft[i]: teacher distributions or None;
    keys[i]: pair key or None. Sentence vector = mean of the token vectors. TCL's positive
    is the first other Doc with the key; all_views: every other Doc with it (multi-view)."""
    h = [_leaf(v) for v in vectors]
    z = [_leaf(x) for x in logits]
    gold_docs = [i for i, g in enumerate(gold) if g is not None]
    ce_docs = []
    for i in gold_docs:
        tokens = [-torch.log_softmax(z[i][t], dim=0)[int(y)] for t, y in enumerate(gold[i]) if y >= 0]
        if tokens:
            ce_docs.append(sum(tokens) / len(tokens))
    total = alpha * _mean(ce_docs)
    labelled = [(h[i][t], int(y)) for i in gold_docs for t, y in enumerate(gold[i]) if y >= 0]
    if labelled:
        tokens = torch.stack([v for v, _ in labelled])
        labels = [y for _, y in labelled]
        rows = [_contrastive_row(tokens, a, [p for p in range(len(labels)) if p != a and labels[p] == labels[a]], tau)
                for a in range(len(labels)) if labels.count(labels[a]) > 1]
        total = total + beta * _mean(rows)
    sentence_docs = [i for i in gold_docs if len(vectors[i])]
    if len(sentence_docs) > 1:
        r = torch.stack([h[i].mean(dim=0) for i in sentence_docs])
        doc_keys = [keys[i] for i in sentence_docs]
        rows = []
        for a, key in enumerate(doc_keys):
            partners = [p for p, other in enumerate(doc_keys) if p != a and key is not None and other == key]
            if partners:
                rows.append(_contrastive_row(r, a, partners if all_views else partners[:1], tau))
        total = total + beta * _mean(rows)
    kd_docs = [_kl_doc(z[i], soft[i]) for i, s in enumerate(soft) if s is not None and len(s)]
    total = total + _mean(kd_docs)
    grads = torch.autograd.grad(total, h + z, allow_unused=True)
    grads = [numpy.zeros(tuple(leaf.shape)) if g is None else g.numpy() for g, leaf in zip(grads, h + z)]
    return float(total.detach()), grads[: len(h)], grads[len(h):]


def _mean(terms):
    return sum(terms) / len(terms) if terms else torch.zeros((), dtype=torch.float64)


def sentence_cross_entropy(logits, truths) -> Tuple[float, List[numpy.ndarray]]:
    """Eq. 3 over the labelled tokens (gold -1 = no label), gradient w.r.t. the logits."""
    leaves = [_leaf(doc_logits) for doc_logits in logits]
    doc_losses = []
    for doc_logits, gold in zip(leaves, truths):
        token_losses = [
            -torch.log(torch.softmax(doc_logits[i], dim=0)[int(y)])
            for i, y in enumerate(gold)
            if y >= 0
        ]
        if token_losses:
            doc_losses.append(sum(token_losses) / len(token_losses))
    return _value_and_grads(doc_losses, leaves)


def _leaf(array) -> torch.Tensor:
    return torch.tensor(numpy.asarray(array, dtype="float64"), requires_grad=True)


def _value_and_grad(terms, leaf: torch.Tensor):
    value, (grad,) = _value_and_grads(terms, [leaf])
    return value, grad


def _value_and_grads(terms, leaves: List[torch.Tensor]):
    if not terms:
        return 0.0, [numpy.zeros(tuple(leaf.shape)) for leaf in leaves]
    total = sum(terms) / len(terms)
    grads = torch.autograd.grad(total, leaves, allow_unused=True)
    return float(total.detach()), [
        numpy.zeros(tuple(leaf.shape)) if g is None else g.numpy()
        for g, leaf in zip(grads, leaves)
    ]


def relation_classification(logits, truths, none_weight: float):
    """mCL-NER's L_rel: -(1/|M|) sum over the labelled cells of all grids of
    w(y) log softmax(s)[y], w(None = label 0) = none_weight; gradient w.r.t. the scores."""
    leaves = [_leaf(grid_logits) for grid_logits in logits]
    terms = [
        -(none_weight if int(y) == 0 else 1.0) * torch.log_softmax(grid[c], dim=0)[int(y)]
        for grid, truth in zip(leaves, truths)
        for c, y in enumerate(truth)
        if y >= 0
    ]
    return _value_and_grads(terms, leaves)


def relation_contrastive(projections, truths, anchors, tau: float = 0.1):
    """mCL-NER's L_rc over the given anchor cells of each grid: q = normalize(projection);
    the positives of anchor a are the other anchors with its label; the mean over the
    anchors with a positive of -1/|P(a)| sum_p log(exp(q_a.q_p/tau) / sum_{k != a} exp(q_a.q_k/tau))."""
    leaves = [_leaf(grid) for grid in projections]
    q = torch.stack([leaves[g][int(c)] for g, cells in enumerate(anchors) for c in cells])
    labels = [int(truths[g][int(c)]) for g, cells in enumerate(anchors) for c in cells]
    return _value_and_grads(_same_label_rows(q, labels, tau), leaves)


def gelu(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1 + torch.erf(x / 2**0.5))


def distance_bucket(offset: int) -> int:
    """W2NER's distance buckets for j - i: 0; 1, 2-3, 4-7, ..., 256+ ahead (1..9); behind +9."""
    if offset == 0:
        return 0
    bucket = min(abs(offset).bit_length(), 9)
    return bucket if offset > 0 else bucket + 9


def pair_grid(h, params, d_scores, d_projections):
    """The grid head on one grid's word vectors h, from its equations: u_i, v_j, the
    relation vectors r_ij = GELU(W_r [u_i; v_j; u_i*v_j; E[bucket(j-i)]] + b_r), scores
    s_ij = W_o r_ij + b_o + [u_i;1]^T U_c [v_j;1], projections q_ij = W_q2 GELU(W_q1 r_ij
    + b_q1) + b_q2. Returns the softmax of the scores (m*m, labels) and the gradients of
    sum(s * d_scores) + sum(q * d_projections) w.r.t. h and each parameter."""
    x = _leaf(h)
    p = {name: _leaf(value) for name, value in params.items()}
    u = gelu(x @ p["W_u"].T + p["b_u"])
    v = gelu(x @ p["W_v"].T + p["b_v"])
    m = len(h)
    ones = torch.ones(1, dtype=torch.float64)
    scores, projections = [], []
    for i in range(m):
        for j in range(m):
            features = torch.cat([u[i], v[j], u[i] * v[j], p["E"][distance_bucket(j - i)]])
            r = gelu(p["W_r"] @ features + p["b_r"])
            u1, v1 = torch.cat([u[i], ones]), torch.cat([v[j], ones])
            biaffine = torch.stack([u1 @ U_c @ v1 for U_c in p["U"]])
            scores.append(p["W_o"] @ r + p["b_o"] + biaffine)
            projections.append(p["W_q2"] @ gelu(p["W_q1"] @ r + p["b_q1"]) + p["b_q2"])
    scores, projections = torch.stack(scores), torch.stack(projections)
    objective = (scores * torch.tensor(d_scores)).sum() + (projections * torch.tensor(d_projections)).sum()
    leaves = [x] + list(p.values())
    grads = torch.autograd.grad(objective, leaves)
    named = dict(zip(["h"] + list(p), (g.numpy() for g in grads)))
    return torch.softmax(scores, dim=1).detach().numpy(), named


def concner_loss_through_heads(vectors, params, gold, soft, keys, alpha, beta, tau=0.1):
    """concner_loss of a token classifier with a projection head, from its equations:
    logits = W h + b for CE and distillation, z = W2 GELU(W1 h + b1) + b2 for LCL and TCL.
    The gradient w.r.t. z and the logits (concner_loss) is passed back through both heads
    by autograd. Returns the value and the gradients w.r.t. every Doc's h and w.r.t.
    each parameter ({name: gradient})."""
    h = [_leaf(v) for v in vectors]
    p = {name: _leaf(value) for name, value in params.items()}
    flat = torch.cat(h)
    logits = flat @ p["W"].T + p["b"]
    projections = gelu(flat @ p["W1"].T + p["b1"]) @ p["W2"].T + p["b2"]
    lengths = [len(v) for v in vectors]
    value, d_projections, d_logits = concner_loss(
        _split_rows(projections, lengths), _split_rows(logits, lengths), gold, soft, keys, alpha, beta, tau
    )
    objective = (projections * torch.tensor(numpy.concatenate(d_projections))).sum() + (
        logits * torch.tensor(numpy.concatenate(d_logits))
    ).sum()
    grads = torch.autograd.grad(objective, h + list(p.values()))
    d_vectors = [g.numpy() for g in grads[: len(h)]]
    return value, d_vectors, dict(zip(p, (g.numpy() for g in grads[len(h):])))


def _split_rows(rows: torch.Tensor, lengths: List[int]) -> List[numpy.ndarray]:
    return numpy.split(rows.detach().numpy(), numpy.cumsum(lengths)[:-1])
