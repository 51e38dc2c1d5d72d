"""Grounding: a target span for an English entity that the alignment leaves without one.

Apertium leaves the words it inserts without an alignment, and the words whose blank it
loses; names are often copied verbatim, though, so the entity's words are looked for in
the target Doc, as EAT grounds its LLM's answers: the longest run of the entity's tokens
(case aside) found in a row among the Doc's tokens, or, for Chinese and Japanese, of its
characters among the Doc's characters, widened to whole tokens. The run is kept if it
covers at least half of the entity and holds a capital or an uncased letter (so that
"of" alone does not ground "Bank of Spain"), at its first place not already covered by
an entity; other entities are dropped.
"""
from typing import List, Optional, Sequence, Set, Tuple

from spacy.tokens import Doc, Span

from ..translate import CHARACTER_LANGS

Unit = Tuple[str, int]  # a token's text or a character, and the index of its token


def ground_entities(doc: Doc, entities: Sequence[Span], taken: Sequence[Span]) -> List[Span]:
    """Target spans for the English entities that ground, not overlapping `taken` or each other."""
    covered: Set[int] = {i for span in taken for i in range(span.start, span.end)}
    units = doc_units(doc)
    grounded = []
    for ent in entities:
        found = ground(units, entity_units(ent, doc.lang_), covered)
        if found is not None:
            grounded.append(Span(doc, found[0], found[1], label=ent.label_))
            covered.update(range(*found))
    return grounded


def doc_units(doc: Doc) -> List[Unit]:
    if doc.lang_ in CHARACTER_LANGS:
        return [(char, token.i) for token in doc for char in token.text if not char.isspace()]
    return [(token.text, token.i) for token in doc if not token.is_space]


def entity_units(ent: Span, lang: str) -> List[str]:
    if lang in CHARACTER_LANGS:
        return [char for char in ent.text if not char.isspace()]
    return [token.text for token in ent if not token.is_space]


def ground(units: Sequence[Unit], wanted: Sequence[str], covered: Set[int]) -> Optional[Tuple[int, int]]:
    """Start and end token of the grounded run, or None (see the module's docstring)."""
    usable = [token not in covered for _, token in units]
    start, length = longest_common_run([text.lower() for text, _ in units], [w.lower() for w in wanted], usable)
    run = units[start : start + length]
    if not run or 2 * length < len(wanted) or not any(_capital_or_uncased(text) for text, _ in run):
        return None
    return run[0][1], run[-1][1] + 1


def longest_common_run(haystack: Sequence[str], needle: Sequence[str], usable: Sequence[bool]) -> Tuple[int, int]:
    """Start and length of the longest run of usable haystack items equal to a run of
    needle items, the first of equal ones; (0, 0) if none."""
    best = (0, 0)
    previous = [0] * (len(needle) + 1)
    for i, item in enumerate(haystack):
        current = [0] * (len(needle) + 1)
        for j, wanted in enumerate(needle):
            if usable[i] and item == wanted:
                current[j + 1] = previous[j] + 1
                if current[j + 1] > best[1]:
                    best = (i - current[j + 1] + 1, current[j + 1])
        previous = current
    return best


def _capital_or_uncased(text: str) -> bool:
    return any(char.isalpha() and not char.islower() for char in text)
