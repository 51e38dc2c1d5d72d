"""spacy_concner.reduce_first_or_zeros.v1: reduce_first.v1, and zeros for a word
without word pieces instead of an error."""
import numpy
import pytest
from spacy.util import registry
from thinc.api import reduce_first
from thinc.types import Ragged


def layer():
    return registry.resolve({"pooling": {"@layers": "spacy_concner.reduce_first_or_zeros.v1"}})["pooling"]


def test_same_as_reduce_first_when_every_word_has_pieces():
    X = Ragged(numpy.arange(12, dtype="f").reshape(6, 2), numpy.array([2, 1, 3], dtype="i"))
    Y, backprop = layer()(X, is_train=True)
    Y_ref, backprop_ref = reduce_first()(X, is_train=True)
    numpy.testing.assert_array_equal(Y, Y_ref)
    dY = numpy.ones_like(Y)
    numpy.testing.assert_array_equal(backprop(dY).dataXd, backprop_ref(dY).dataXd)


def test_a_word_without_pieces_gets_zeros_and_no_gradient():
    """Regression: a zero-width space, a token of its own in WikiANN zh, has no word
    piece, and reduce_first.v1 failed the whole batch ("all sequence lengths must be > 0")."""
    X = Ragged(numpy.arange(8, dtype="f").reshape(4, 2), numpy.array([2, 0, 0, 2], dtype="i"))
    with pytest.raises(ValueError, match="lengths must be > 0"):
        reduce_first()(X, is_train=False)
    Y, backprop = layer()(X, is_train=True)
    numpy.testing.assert_array_equal(Y, [[0, 1], [0, 0], [0, 0], [4, 5]])
    dX = backprop(numpy.array([[1, 1], [9, 9], [9, 9], [2, 2]], dtype="f"))
    numpy.testing.assert_array_equal(dX.dataXd, [[1, 1], [0, 0], [2, 2], [0, 0]])
    numpy.testing.assert_array_equal(dX.lengths, [2, 0, 0, 2])
