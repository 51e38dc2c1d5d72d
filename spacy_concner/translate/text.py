"""Plain text around translation: detokenising the source, building the target Doc.

MT systems read running text, not CoNLL tokens, and their output is retokenised with the
target language's spaCy tokenizer; entities travel as character spans in between.
"""
import re
from typing import List, Sequence, Tuple

import spacy
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from ..pairs import PAIR_KEY

CharSpan = Tuple[int, int, str]  # start, end, label
_NO_SPACE_BEFORE = {".", ",", ";", ":", "!", "?", "%", ")", "]", "}", "'s", "'", "n't", "'re", "'ve", "'ll", "'d", "'m", "..."}
_NO_SPACE_AFTER = {"(", "[", "{", "$", "#"}
_SPACE_RUN = re.compile(r"\s+")


def detokenize(words: Sequence[str]) -> List[bool]:
    """Whether each word is followed by a space, in ordinary English typography."""
    spaces = [True] * len(words)
    open_quote = False
    for i, word in enumerate(words):
        if word == '"':
            open_quote = not open_quote
            if open_quote:
                spaces[i] = False
            else:
                _glue_left(spaces, i)
        elif word.lower() in _NO_SPACE_BEFORE:
            _glue_left(spaces, i)
        elif word in _NO_SPACE_AFTER:
            spaces[i] = False
    if spaces:
        spaces[-1] = False
    return spaces


def _glue_left(spaces: List[bool], i: int) -> None:
    if i > 0:
        spaces[i - 1] = False


def normalize_space(text: str, spans: Sequence[CharSpan]) -> Tuple[str, List[CharSpan]]:
    """Collapse runs of whitespace to one space and strip the ends, moving the spans along."""
    collapsed = _SPACE_RUN.sub(" ", text)
    stripped = collapsed.strip()
    lead = len(collapsed) - len(collapsed.lstrip())
    offsets = [min(max(o - lead, 0), len(stripped)) for o in _offset_map(text)]
    moved = []
    for start, end, label in spans:
        a, b = offsets[start], offsets[end]
        while a < b and stripped[a] == " ":
            a += 1
        while b > a and stripped[b - 1] == " ":
            b -= 1
        if a < b:
            moved.append((a, b, label))
    return stripped, moved


def _offset_map(text: str) -> List[int]:
    """For each offset 0..len(text) in text, the offset in the whitespace-collapsed text."""
    offsets, new, previous_space = [], 0, False
    for char in text:
        offsets.append(new)
        is_space = char.isspace()
        if not (is_space and previous_space):
            new += 1
        previous_space = is_space
    offsets.append(new)
    return offsets


def target_doc(nlp: spacy.Language, text: str, spans: Sequence[CharSpan], pair_key) -> Doc:
    """The target Doc: text tokenised by nlp, spans widened to whole tokens as entities."""
    text, spans = normalize_space(text, spans)
    doc = nlp.make_doc(text)
    ents = [doc.char_span(s, e, label=label, alignment_mode="expand") for s, e, label in spans]
    doc.ents = filter_spans([ent for ent in ents if ent is not None and len(ent)])
    doc.user_data[PAIR_KEY] = pair_key
    return doc


def split_characters(doc: Doc) -> Doc:
    """One token per character (WikiANN's Chinese tokenisation), entities spread over them."""
    words, spaces, starts = [], [], []
    for text, space in zip([t.text for t in doc], [bool(t.whitespace_) for t in doc]):
        starts.append(len(words))
        words.extend(text)
        spaces.extend([False] * (len(text) - 1) + [space])
    starts.append(len(words))
    out = Doc(doc.vocab, words=words, spaces=spaces)
    out.ents = [Span(out, starts[e.start], starts[e.end], label=e.label) for e in doc.ents]
    out.user_data.update(doc.user_data)
    return out


ISO639_1 = {"eng": "en", "spa": "es", "cat": "ca", "glg": "gl", "epo": "eo", "fra": "fr",
             "por": "pt", "ita": "it", "deu": "de", "nld": "nl", "ara": "ar", "hin": "hi",
             "zho": "zh"}


def target_lang(pair: str) -> str:
    """The spaCy language code of a pair's target: "eng-spa" -> "es"."""
    target = pair.rsplit("-", 1)[-1].split("_")[0]
    return ISO639_1.get(target, target)


def source_parts(doc: Doc) -> Tuple[List[str], List[bool], List[Tuple[int, int, str]]]:
    """Words, detokenised spaces and entities (token offsets) of a source Doc."""
    words = [token.text for token in doc]
    return words, detokenize(words), [(e.start, e.end, e.label_) for e in doc.ents]
