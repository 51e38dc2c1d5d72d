"""The word-pair label grid of mCL-NER's token-pair relation view, after W2NER (Li et al.,
AAAI 2022, "Unified Named Entity Recognition as Word-Word Relation Classification"):
entity spans to grid cell labels, and predicted cell probabilities back to entity spans.

Every ordered pair (i, j) of a sentence's words is a cell with one label:
- `NNW` (next-neighbouring word) at (i, i + 1) when words i and i + 1 are consecutive
  words of one entity (upper triangle);
- `THW-<type>` (tail-head word) at (t, h) for an entity of that type spanning words h..t
  (lower triangle; on the diagonal for a one-word entity);
- `None` everywhere else.
"New York City" as LOC at words 3..5: NNW at (3, 4) and (4, 5), THW-LOC at (5, 3).

A grid covers at most MAX_WORDS words. A longer sentence is covered by windows of
MAX_WORDS words, WINDOW_STRIDE words apart, the last one ending at the sentence's end:
training labels each window's cells as the sentence's grid has them (an entity cut by a
window's edge keeps its NNW cells inside the window), and prediction decodes every window
and keeps the best-scoring non-overlapping entities of all of them. An entity of up to
MAX_WORDS - WINDOW_STRIDE words lies whole in at least one window.
"""
from typing import List, NamedTuple, Sequence, Tuple

import numpy

NONE, NNW, THW = "None", "NNW", "THW-"
NONE_ID, NNW_ID, FIRST_THW_ID = 0, 1, 2
# a cell without a gold label (a word whose annotation is unknown): left out of the losses
MISSING = -1
MAX_WORDS = 64
WINDOW_STRIDE = 32
# distance buckets: 0; 1, 2-3, 4-7, ..., 256+ ahead; the same behind (W2NER's log2 buckets)
N_DISTANCE_BUCKETS = 19

Span = Tuple[int, int, str]  # (start, end, type): words start..end-1


class Candidate(NamedTuple):
    """An entity a grid predicts. score: the mean probability of the predicted labels of
    its cells (the THW cell and the NNW chain), which ranks overlapping candidates;
    confidence: the lowest of them (the self-training filter's)."""

    score: float
    span: Span
    confidence: float


def grid_labels(types: Sequence[str]) -> List[str]:
    """The cell labels, one per score column: None, NNW, then THW-<type> per entity type."""
    return [NONE, NNW] + [THW + label for label in types]


def cell_labels(n_words: int, spans: Sequence[Span], types: Sequence[str]) -> numpy.ndarray:
    """(n_words, n_words) label ids of a sentence's entities (spans of known types)."""
    type_ids = {label: FIRST_THW_ID + i for i, label in enumerate(types)}
    grid = numpy.full((n_words, n_words), NONE_ID, dtype="int32")
    for start, end, label in spans:
        words = numpy.arange(start, end - 1)
        grid[words, words + 1] = NNW_ID
        grid[end - 1, start] = type_ids[label]
    return grid


def windows(n_words: int) -> List[Tuple[int, int]]:
    """(start, end) of the grids that cover a sentence: itself up to MAX_WORDS words."""
    if n_words <= MAX_WORDS:
        return [(0, n_words)] if n_words else []
    starts = list(range(0, n_words - MAX_WORDS, WINDOW_STRIDE)) + [n_words - MAX_WORDS]
    return [(start, start + MAX_WORDS) for start in starts]


def distance_buckets(n_words: int) -> numpy.ndarray:
    """(n, n) bucket of each cell's offset j - i: 0 on the diagonal, 1 + floor(log2(d))
    (at most 9) for d = j - i > 0, the same plus 9 for d < 0."""
    offsets = numpy.arange(n_words)[None, :] - numpy.arange(n_words)[:, None]
    magnitude = numpy.abs(offsets)
    buckets = numpy.minimum(1 + numpy.floor(numpy.log2(numpy.maximum(magnitude, 1))), 9).astype("int64")
    return numpy.where(offsets == 0, 0, numpy.where(offsets > 0, buckets, buckets + 9))


def candidates(probs: numpy.ndarray, types: Sequence[str]) -> List[Candidate]:
    """The entities one grid's (n, n, labels) probabilities predict.

    Each cell takes its most likely label. A THW-<type> cell (t, h) with t >= h is the
    entity h..t if every NNW cell of the chain h -> h+1 -> ... -> t is predicted too; its
    cells are the THW cell and those NNW cells. A THW cell above the diagonal, or with a
    broken chain, predicts nothing.
    """
    predicted = probs.argmax(axis=2)
    best = probs.max(axis=2)
    links = numpy.diagonal(predicted, offset=1) == NNW_ID  # links[k]: NNW at (k, k + 1)
    found = []
    for tail, head in zip(*numpy.nonzero(numpy.tril(predicted >= FIRST_THW_ID))):
        if links[head:tail].all():
            chain = numpy.arange(head, tail)
            cells = numpy.concatenate([[best[tail, head]], best[chain, chain + 1]])
            label = types[predicted[tail, head] - FIRST_THW_ID]
            found.append(Candidate(float(cells.mean()), (int(head), int(tail) + 1, label), float(cells.min())))
    return found


def non_overlapping(scored: Sequence[Candidate]) -> List[Candidate]:
    """The candidates kept by taking the best-scoring first (ties: the earlier, then the
    shorter one) and dropping each that overlaps one already kept; in text order."""
    kept: List[Candidate] = []
    taken = set()
    for candidate in sorted(scored, key=lambda c: (-c.score, c.span[0], c.span[1])):
        words = set(range(candidate.span[0], candidate.span[1]))
        if not words & taken:
            kept.append(candidate)
            taken |= words
    return sorted(kept, key=lambda c: c.span)


def decode(window_probs: Sequence[numpy.ndarray], n_words: int, types: Sequence[str]) -> List[Candidate]:
    """A sentence's entities from the (m, m, labels) probabilities of its windows (in the
    order of `windows(n_words)`): valid, flat and non-overlapping, with the spans in
    sentence words."""
    scored = []
    for (start, _), probs in zip(windows(n_words), window_probs):
        for candidate in candidates(probs, types):
            head, end, label = candidate.span
            scored.append(candidate._replace(span=(head + start, end + start, label)))
    return non_overlapping(scored)
