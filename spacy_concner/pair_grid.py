"""spacy_concner.PairGridClassifier.v1: the word-pair classifier of mCL-NER's token-pair
relation view, after W2NER (Li et al., AAAI 2022), on any tok2vec layer.

For the word vectors h of a grid (grid.windows: a sentence, or a window of a long one):

    u_i = GELU(W_u h_i + b_u),  v_j = GELU(W_v h_j + b_v)                       (d_b each)
    r_ij = GELU(W_r [u_i; v_j; u_i * v_j; E_dist(bucket(j - i))] + b_r)          (d_r)
    s_ij = W_o r_ij + b_o + Biaff(u_i, v_j),  Biaff(u, v)_c = [u; 1]^T U_c [v; 1]
    p_ij = softmax(s_ij),  q_ij = g_r(r_ij) = W_q2 GELU(W_q1 r_ij + b_q1) + b_q2

r_ij is the relation vector; q_ij its projection for the relation contrast (computed in
training only). W2NER's BiLSTM, conditional layer norm and dilated convolutions are left
out: on a CPU they would cost more than the rest of the head.

The pair layer is written with thinc's array ops and its own backward pass (checked
against PyTorch autograd in the tests), so that its weights are ordinary thinc
parameters: the component's lr_scale and spaCy's serialisation apply to them as to the
token classifier's softmax layer.
"""
from typing import List, NamedTuple, Optional

import numpy
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Gelu, Linear, Model, chain, glorot_uniform_init
from thinc.types import Floats2d

from .grid import N_DISTANCE_BUCKETS, distance_buckets, windows


class GridScores(NamedTuple):
    """The model's output for a batch of Docs: the word vectors h, one (n, width) array
    per Doc; then one array per grid, grids in Doc order and each Doc's in the order of
    grid.windows: the label probabilities of its m x m cells, (m * m, labels), row i * m
    + j for cell (i, j); and the projections q of its relation vectors, (m * m, width),
    None outside training. The backward pass takes the same structure: the gradient
    w.r.t. the vectors, the pre-softmax scores and the projections (None: zero)."""

    vectors: List[Floats2d]
    probs: List[Floats2d]
    projections: Optional[List[Floats2d]]


@registry.architectures("spacy_concner.PairGridClassifier.v1")
def build_pair_grid_classifier(
    tok2vec: Model[List[Doc], List[Floats2d]],
    biaffine_width: int = 128,
    relation_width: int = 128,
    distance_width: int = 20,
    projection_width: int = 128,
    nO: Optional[int] = None,
) -> Model[List[Doc], GridScores]:
    """tok2vec: one vector per spaCy token, e.g. a spacy-transformers
    TransformerListener. biaffine_width: d_b of u and v; relation_width: d_r of the
    relation vectors; distance_width: of the distance embeddings; projection_width: of
    the relation contrast's projections q. nO: the number of cell labels (None, NNW and
    one THW per entity type), set by the component at initialize time."""
    pairs: Model = Model(
        "pair_grid",
        pairs_forward,
        init=pairs_init,
        dims={"nI": biaffine_width, "nO": nO, "nR": relation_width, "nD": distance_width},
        params={name: None for name in ("E", "W_r", "b_r", "W_o", "b_o", "U")},
    )
    heads: Model = Model(
        "pair_grid_heads",
        heads_forward,
        init=heads_init,
        layers=[Gelu(nO=biaffine_width), Gelu(nO=biaffine_width), pairs,
                chain(Gelu(nO=relation_width), Linear(nO=projection_width))],
    )
    model = chain(tok2vec, heads)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("output_layer", pairs)
    return model


def heads_init(model: Model, X: Optional[List[Floats2d]] = None, Y=None) -> None:
    head_u, head_v, pairs, projection = model.layers
    sample = model.ops.xp.concatenate(X) if X else None
    head_u.initialize(X=sample)
    head_v.initialize(X=sample)
    pairs.initialize()
    projection.initialize(X=model.ops.alloc2f(1, pairs.get_dim("nR")))


def heads_forward(model: Model, vectors: List[Floats2d], is_train: bool):
    """u and v for all the batch's words at once, then the pair layer grid by grid."""
    head_u, head_v, pairs, projection = model.layers
    ops = model.ops
    # spacy-transformers gives an empty Doc a 0 x 0 array: give it the real width
    width = head_u.get_dim("nI")
    vectors = [v if v.shape[1] == width else ops.alloc2f(0, width) for v in vectors]
    flat = ops.xp.concatenate(vectors)
    u, backprop_u = head_u(flat, is_train)
    v, backprop_v = head_v(flat, is_train)
    grids = [(offset + start, offset + end) for offset, doc_vectors in zip(_offsets(vectors), vectors)
             for start, end in windows(len(doc_vectors))]
    outputs = [pairs((u[start:end], v[start:end]), is_train) for start, end in grids]
    probs = [probs for (probs, _), _ in outputs]
    projections, backprop_projection = None, None
    if is_train and grids:
        relations = ops.xp.concatenate([relation for (_, relation), _ in outputs])
        flat_projections, backprop_projection = projection(relations, is_train)
        projections = _split(ops, flat_projections, [len(p) for p in probs])

    def backprop(d_outputs: GridScores) -> List[Floats2d]:
        d_vectors, d_scores, d_projections = d_outputs
        d_relations = [None] * len(grids)
        if d_projections is not None and backprop_projection is not None:
            d_flat = backprop_projection(ops.xp.concatenate(d_projections))
            d_relations = _split(ops, d_flat, [len(p) for p in probs])
        d_u, d_v = ops.alloc2f(*u.shape), ops.alloc2f(*v.shape)
        for (start, end), (_, backprop_pairs), d_s, d_r in zip(grids, outputs, d_scores, d_relations):
            d_u_grid, d_v_grid = backprop_pairs((d_s, d_r))
            d_u[start:end] += d_u_grid
            d_v[start:end] += d_v_grid
        d_flat = backprop_u(d_u) + backprop_v(d_v)
        return [dv + dh for dv, dh in zip(d_vectors, _split(ops, d_flat, [len(v) for v in vectors]))]

    return GridScores(vectors, probs, projections), backprop


def _offsets(arrays: List) -> List[int]:
    return numpy.cumsum([0] + [len(a) for a in arrays[:-1]]).tolist()


def _split(ops, array, lengths: List[int]) -> List:
    return ops.xp.split(array, numpy.cumsum(lengths)[:-1].tolist())


def pairs_init(model: Model, X=None, Y=None) -> None:
    d_b, d_r, d_d, n_labels = (model.get_dim(d) for d in ("nI", "nR", "nD", "nO"))
    ops = model.ops
    model.set_param("E", glorot_uniform_init(ops, (N_DISTANCE_BUCKETS, d_d)))
    model.set_param("W_r", glorot_uniform_init(ops, (d_r, 3 * d_b + d_d)))
    model.set_param("b_r", ops.alloc1f(d_r))
    model.set_param("W_o", glorot_uniform_init(ops, (n_labels, d_r)))
    model.set_param("b_o", ops.alloc1f(n_labels))
    # Xavier-normal as W2NER's biaffine layer (fan-in (d_b + 1)^2, fan-out labels * (d_b + 1))
    std = (2.0 / ((d_b + 1) ** 2 + n_labels * (d_b + 1))) ** 0.5
    model.set_param("U", ops.asarray_f(numpy.random.normal(0, std, (n_labels, d_b + 1, d_b + 1))))


def pairs_forward(model: Model, uv, is_train: bool):
    """One grid: (u, v) of its m words -> ((m * m, labels) probabilities, (m * m, d_r)
    relation vectors). The backward pass takes the gradients w.r.t. the pre-softmax
    scores and the relation vectors (None: zero) and returns those w.r.t. u and v."""
    u, v = uv
    ops, xp = model.ops, model.ops.xp
    m, d_b = u.shape
    E, W_r, b_r, W_o, b_o, U = (model.get_param(p) for p in ("E", "W_r", "b_r", "W_o", "b_o", "U"))
    n_labels = len(b_o)
    W_u, W_v, W_uv, W_d = W_r[:, :d_b], W_r[:, d_b : 2 * d_b], W_r[:, 2 * d_b : 3 * d_b], W_r[:, 3 * d_b :]
    # one-hot distance buckets: the embedding lookup's backward pass as a matrix product
    buckets = xp.asarray(distance_buckets(m).ravel()[:, None] == numpy.arange(N_DISTANCE_BUCKETS), dtype=u.dtype)
    products = (u[:, None, :] * v[None, :, :]).reshape(m * m, d_b)
    # W_r applied to the concatenation, one part at a time: u_i and v_j once per word
    pre = (
        ((u @ W_u.T)[:, None, :] + (v @ W_v.T)[None, :, :]).reshape(m * m, -1)
        + products @ W_uv.T
        + buckets @ (E @ W_d.T)
        + b_r
    )
    relations = ops.gelu(pre)
    u1, v1 = _with_ones(xp, u), _with_ones(xp, v)
    # Biaff(u_i, v_j)_c = sum_y ([u_i; 1]^T U_c)_y [v_j; 1]_y, as two matrix products
    u1_U = xp.tensordot(u1, U, axes=([1], [1]))  # (m, labels, d_b + 1)
    biaffine = (u1_U.reshape(m * n_labels, -1) @ v1.T).reshape(m, n_labels, m).transpose(0, 2, 1)
    probs = ops.softmax(relations @ W_o.T + b_o + biaffine.reshape(m * m, n_labels))

    def backprop(d_outputs):
        d_scores, d_relations = d_outputs
        model.inc_grad("W_o", d_scores.T @ relations)
        model.inc_grad("b_o", d_scores.sum(axis=0))
        d_grid = d_scores.reshape(m, m, n_labels)
        d_v1_U = d_grid.transpose(0, 2, 1) @ v1  # (m, labels, d_b + 1): sum over j
        model.inc_grad("U", xp.tensordot(u1, d_v1_U, axes=([0], [0])).transpose(1, 0, 2))
        d_u = (d_v1_U.reshape(m, -1) @ U.transpose(0, 2, 1).reshape(-1, d_b + 1))[:, :d_b]
        d_v = (d_grid.transpose(1, 0, 2).reshape(m, -1) @ u1_U.reshape(m * n_labels, -1))[:, :d_b]
        d_relations = d_scores @ W_o + (0 if d_relations is None else d_relations)
        d_pre = ops.backprop_gelu(d_relations, pre)
        d_pre_grid = d_pre.reshape(m, m, -1)
        d_by_bucket = buckets.T @ d_pre
        d_rows, d_cols = d_pre_grid.sum(axis=1), d_pre_grid.sum(axis=0)
        model.inc_grad("W_r", xp.concatenate(
            [d_rows.T @ u, d_cols.T @ v, d_pre.T @ products, d_by_bucket.T @ E], axis=1))
        model.inc_grad("b_r", d_pre.sum(axis=0))
        model.inc_grad("E", d_by_bucket @ W_d)
        d_products = (d_pre @ W_uv).reshape(m, m, d_b)
        d_u += d_rows @ W_u + (d_products * v[None, :, :]).sum(axis=1)
        d_v += d_cols @ W_v + (d_products * u[:, None, :]).sum(axis=0)
        return d_u, d_v

    return (probs, relations), backprop


def _with_ones(xp, x):
    return xp.concatenate([x, xp.ones((len(x), 1), dtype=x.dtype)], axis=1)
