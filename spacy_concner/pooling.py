"""A word's vector from its word pieces: the first piece's, and zeros for a word that
has no piece.

thinc's reduce_first.v1 raises on a word without pieces. The encoder's tokenizer gives
none to a word of characters it drops in normalisation, such as a zero-width space
(U+200B), which WikiANN's Chinese text has as tokens of their own: one such token made
a whole batch fail. Such a word gets a zero vector, and no gradient flows from it.
"""
from typing import Callable, Tuple

from thinc.api import Model
from thinc.types import Floats2d, Ragged
from spacy.util import registry


@registry.layers("spacy_concner.reduce_first_or_zeros.v1")
def reduce_first_or_zeros() -> Model[Ragged, Floats2d]:
    """reduce_first.v1 that gives a word without word pieces a vector of zeros."""
    return Model("reduce_first_or_zeros", forward)


def forward(model: Model, Xr: Ragged, is_train: bool) -> Tuple[Floats2d, Callable]:
    ops = model.ops
    X, lengths = Xr.dataXd, ops.asarray(Xr.lengths)
    starts = ops.xp.concatenate([ops.xp.zeros(1, dtype=lengths.dtype), lengths.cumsum()[:-1]])
    rows = ops.xp.nonzero(lengths > 0)[0]
    Y = ops.alloc2f(len(lengths), X.shape[1])
    Y[rows] = X[starts[rows]]
    shape = X.shape

    def backprop(dY: Floats2d) -> Ragged:
        dX = ops.alloc2f(*shape)
        dX[starts[rows]] = dY[rows]
        return Ragged(dX, lengths)

    return Y, backprop
