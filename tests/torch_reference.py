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
    labels = list(labels)
    row_losses = []
    for i, label in enumerate(labels):
        positives = [p for p, other in enumerate(labels) if p != i and other == label]
        if positives:
            row_losses.append(_contrastive_row(h, i, positives, tau))
    return _value_and_grad(row_losses, h)


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
