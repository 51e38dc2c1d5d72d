"""An English translation with its word alignment, as the `eat` component's backends give it.

Each piece is the character span of an English word and the indices of the target tokens
it translates; text outside the pieces (words the MT system inserted) is unaligned. The
English NER pipeline tokenises the text its own way; `token_sources` reads the alignment
off its tokens.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Set

from spacy.tokens import Doc

from ..translate.markers import AlignedPiece


@dataclass
class AlignedText:
    text: str
    pieces: List[AlignedPiece] = field(default_factory=list)
    error: Optional[str] = None  # why the translation failed (the text is then empty)


def token_sources(doc: Doc, pieces: List[AlignedPiece]) -> List[Set[int]]:
    """For each token of the English Doc, the target tokens that the pieces it overlaps translate."""
    sources: List[Set[int]] = [set() for _ in doc]
    for start, end, indices in pieces:
        span = doc.char_span(start, end, alignment_mode="expand")
        for token in span if span is not None else ():
            sources[token.i].update(indices)
    return sources
