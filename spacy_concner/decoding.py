"""IOB2 tags from a token classifier's per-token tag distributions.

"greedy" takes each token's most likely tag on its own. A multi-word name whose tokens
disagree on the type (B-LOC then I-ORG) then falls apart into two entities, as conlleval
and seqeval read such a sequence. "viterbi" takes the most likely sequence of tags in
which every I-X continues a B-X or an I-X: the largest sum of log probabilities over
the valid IOB2 sequences (a first-order constraint, no learnt transition scores), the
constrained decoding of BIO taggers without a CRF.
"""
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

import numpy

_LOG_FLOOR = 1e-12  # log(0) would make every path through a zero-probability tag -inf


def check_decoding(decoding: str, name: str) -> str:
    """decoding, if it is one of DECODINGS."""
    if decoding not in DECODINGS:
        raise ValueError(f"'{name}': decoding must be one of {', '.join(DECODINGS)}, not '{decoding}'")
    return decoding


def decode_tags(probs: numpy.ndarray, tags: Sequence[str], decoding: str) -> Tuple[List[str], List[float]]:
    """The tag of each token (rows of probs; columns are tags) and its probability."""
    if len(probs) == 0:
        return [], []
    ids = DECODERS[check_decoding(decoding, "decode_tags")](probs, tuple(tags))
    return [tags[i] for i in ids], probs[numpy.arange(len(probs)), ids].tolist()


def greedy_ids(probs: numpy.ndarray, tags: Tuple[str, ...]) -> numpy.ndarray:
    """The column id of each token's most likely tag."""
    return probs.argmax(axis=1)


def viterbi_ids(probs: numpy.ndarray, tags: Tuple[str, ...]) -> numpy.ndarray:
    """The column ids of the most likely valid IOB2 sequence."""
    allowed, may_start = _transitions(tags)
    log_probs = numpy.log(numpy.maximum(probs, _LOG_FLOOR))
    score = numpy.where(may_start, log_probs[0], -numpy.inf)
    back = numpy.zeros(probs.shape, dtype="int64")
    for i in range(1, len(probs)):
        candidates = score[:, None] + allowed  # previous tag x this tag
        back[i] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + log_probs[i]
    ids = numpy.zeros(len(probs), dtype="int64")
    ids[-1] = score.argmax()
    for i in range(len(probs) - 1, 0, -1):
        ids[i - 1] = back[i, ids[i]]
    return ids


@lru_cache(maxsize=16)
def _transitions(tags: Tuple[str, ...]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """0 where tag j may follow tag i and -inf where not; which tags may start a sentence."""
    is_inside = numpy.array([tag.startswith("I-") for tag in tags])
    is_entity = numpy.array([tag != "O" for tag in tags])
    types = numpy.array([tag[2:] for tag in tags])
    continues = is_entity[:, None] & (types[:, None] == types[None, :])
    allowed = numpy.where(~is_inside[None, :] | continues, 0.0, -numpy.inf)
    return allowed, ~is_inside


DECODERS = {"viterbi": viterbi_ids, "greedy": greedy_ids}
DECODINGS = tuple(DECODERS)


def pipeline_decoding(nlp, decoding: Optional[str] = None) -> Optional[str]:
    """The decoding of nlp's tag-decoding components (those with a `decoding` setting,
    and `eat`, which sets its English pipeline's), after setting it to `decoding` if
    given; None if nlp has no such component."""
    pipes = [(name, pipe) for name, pipe in nlp.pipeline if hasattr(pipe, "decoding")]
    if decoding is not None:
        if not pipes:
            raise ValueError(f"no component of the pipeline ({', '.join(nlp.pipe_names)}) decodes tags: leave out the decoding")
        for name, pipe in pipes:
            pipe.decoding = check_decoding(decoding, name)
    used = sorted({pipe.decoding for _, pipe in pipes} - {None})
    return "+".join(used) if used else None
