"""The word-pair label grid (grid.py): cell labels of entities, windows of long
sentences, distance buckets, and decoding predicted cells into flat entities."""
import numpy
import pytest

from spacy_concner.grid import (
    MAX_WORDS,
    WINDOW_STRIDE,
    candidates,
    cell_labels,
    decode,
    distance_buckets,
    grid_labels,
    windows,
)

TYPES = ["LOC", "PER"]
NONE, NNW, LOC, PER = range(4)


def test_grid_labels():
    assert grid_labels(TYPES) == ["None", "NNW", "THW-LOC", "THW-PER"]


def test_new_york_city():
    """ "New York City" as LOC at words 3..5 (0-based here: the sentence's 4th to 6th
    words): NNW at (3, 4) and (4, 5), THW-LOC at (5, 3), all other cells None."""
    grid = cell_labels(7, [(3, 6, "LOC")], TYPES)
    expected = numpy.zeros((7, 7), dtype=int)
    expected[3, 4] = expected[4, 5] = NNW
    expected[5, 3] = LOC
    numpy.testing.assert_array_equal(grid, expected)


def test_one_word_entities_are_on_the_diagonal():
    grid = cell_labels(4, [(0, 1, "PER"), (2, 3, "LOC"), (3, 4, "LOC")], TYPES)
    assert grid[0, 0] == PER and grid[2, 2] == LOC and grid[3, 3] == LOC
    assert (grid[numpy.triu_indices(4, 1)] == NONE).all()  # adjacent entities: no NNW between them


def spans_of(found):
    return [candidate.span for candidate in found]


def one_hot(labels, n_labels=4, confidence=0.9):
    """Probabilities whose most likely label is `labels` for each cell."""
    labels = numpy.asarray(labels)
    rest = (1 - confidence) / (n_labels - 1)
    probs = numpy.full(labels.shape + (n_labels,), rest)
    numpy.put_along_axis(probs, labels[..., None], confidence, axis=-1)
    return probs


@pytest.mark.parametrize(
    "spans",
    [[(3, 6, "LOC")], [(0, 1, "PER"), (1, 2, "LOC")], [(0, 2, "PER"), (3, 7, "LOC"), (7, 8, "PER")], []],
)
def test_decoding_gold_grids_gives_their_entities(spans):
    grid = cell_labels(8, spans, TYPES)
    assert spans_of(decode([one_hot(grid)], 8, TYPES)) == sorted(spans)


def test_broken_chain_and_thw_above_the_diagonal_give_nothing():
    grid = cell_labels(6, [(1, 4, "LOC")], TYPES)
    grid[2, 3] = NONE  # NNW chain 1 -> 2 -> 3 broken
    grid[0, 5] = PER  # a THW cell in the upper triangle
    assert decode([one_hot(grid)], 6, TYPES) == []


def test_candidate_score_is_the_mean_probability_of_its_cells_and_its_confidence_the_lowest():
    grid = cell_labels(3, [(0, 3, "PER")], TYPES)
    probs = one_hot(grid)
    probs[0, 1] = [0.1, 0.6, 0.2, 0.1]
    assert candidates(probs, TYPES) == [(pytest.approx((0.9 + 0.6 + 0.9) / 3), (0, 3, "PER"), pytest.approx(0.6))]


def test_overlaps_are_resolved_by_score():
    """Nested and crossing candidates: the best-scoring one stays, what overlaps it goes."""
    grid = cell_labels(6, [(0, 3, "LOC")], TYPES)
    grid[1, 1] = PER  # "word 1" alone as PER, inside the LOC entity
    grid[3, 2] = LOC  # words 2..3, crossing the LOC entity's end (NNW (2, 3) added)
    grid[2, 3] = NNW
    probs = one_hot(grid)
    probs[1, 1] = one_hot(PER, confidence=0.99)
    # PER first; LOC 0..2 overlaps it, LOC 2..3 does not
    assert spans_of(decode([probs], 6, TYPES)) == [(1, 2, "PER"), (2, 4, "LOC")]
    probs[1, 1] = one_hot(PER, confidence=0.5)
    # LOC 0..2 and LOC 2..3 tie at 0.9: the earlier wins, and both others overlap it
    assert spans_of(decode([probs], 6, TYPES)) == [(0, 3, "LOC")]


def test_windows():
    assert windows(0) == []
    assert windows(5) == [(0, 5)]
    assert windows(MAX_WORDS) == [(0, MAX_WORDS)]
    assert windows(MAX_WORDS + 1) == [(0, MAX_WORDS), (1, MAX_WORDS + 1)]
    n = 3 * MAX_WORDS
    spans = windows(n)
    assert spans[0] == (0, MAX_WORDS) and spans[-1] == (n - MAX_WORDS, n)
    assert all(end - start == MAX_WORDS for start, end in spans)
    assert all(b[0] - a[0] <= WINDOW_STRIDE for a, b in zip(spans, spans[1:]))


def test_an_entity_cut_by_one_window_is_whole_in_the_next():
    """Decoding each window of a long sentence and keeping the best of all of them."""
    n = MAX_WORDS + 20
    spans = [(60, 68, "LOC"), (2, 3, "PER"), (80, 83, "PER")]
    grid = cell_labels(n, spans, TYPES)
    window_probs = [one_hot(grid[start:end, start:end]) for start, end in windows(n)]
    assert spans_of(decode(window_probs, n, TYPES)) == sorted(spans)
    # the LOC entity is decoded from the second window (words 20..83): its confidence is
    # that of its cells there, NNW (63, 64) at 0.7
    (start, _), second = windows(n)[1], window_probs[1]
    second[63 - start, 64 - start] = one_hot(NNW, confidence=0.7)
    found = {c.span: c.confidence for c in decode(window_probs, n, TYPES)}
    assert found == pytest.approx({(2, 3, "PER"): 0.9, (60, 68, "LOC"): 0.7, (80, 83, "PER"): 0.9})


def test_distance_buckets():
    buckets = distance_buckets(300)
    row = buckets[0]
    assert row[0] == 0 and row[1] == 1 and list(row[2:4]) == [2, 2] and list(row[4:8]) == [3] * 4
    assert row[8] == 4 and row[16] == 5 and row[32] == 6 and row[64] == 7 and row[255] == 8 and row[256] == 9
    assert (buckets.T[0, 1:] == row[1:] + 9).all()  # behind: the same plus 9
    assert buckets.max() == 18
