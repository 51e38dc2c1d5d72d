"""English entities back onto the target words, through the word alignment.

An English entity maps to the union of the target tokens its words translate. Those
form one span when no gap between them is wider than one token (a target word the
translation dropped, such as a preposition inside a name); otherwise the block with the
most of them is kept, since a name is contiguous in the target too. Entities with no
aligned word are grounded in the target text (grounding.py); overlaps are resolved in
favour of the longer span.
"""
from typing import List, Sequence, Set, Tuple

from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from .grounding import ground_entities


def project_entities(doc: Doc, english: Doc, sources: Sequence[Set[int]]) -> List[Span]:
    """Spans of the target Doc for the English Doc's entities, without overlaps;
    sources[i] holds the target tokens that English token i translates."""
    aligned, unaligned = [], []
    for ent in english.ents:
        indices = set().union(*(sources[token.i] for token in ent))
        if indices:
            start, end = source_block(sorted(indices))
            aligned.append(Span(doc, start, end, label=ent.label_))
        else:
            unaligned.append(ent)
    return filter_spans(aligned + ground_entities(doc, unaligned, aligned))


def source_block(indices: Sequence[int]) -> Tuple[int, int]:
    """Start and end of the tokens that sorted indices cover, gaps of one token bridged;
    the block with the most indices (the first of equal ones) when a wider gap splits them."""
    blocks = [[indices[0]]]
    for index in indices[1:]:
        if index - blocks[-1][-1] <= 2:
            blocks[-1].append(index)
        else:
            blocks.append([index])
    best = max(blocks, key=len)
    return best[0], best[-1] + 1
