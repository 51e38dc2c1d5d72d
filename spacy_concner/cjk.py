"""The encoder's text for Chinese and Japanese: characters joined without spaces.

spaCy Docs read from CoNLL-style files put a space after every token. WikiANN's Chinese
and Japanese have one token per character, so the text spacy-transformers gives the
encoder reads "北 京 是 ...", and an XLM-R SentencePiece tokenizer turns it into
"▁ 北 ▁ 京 ▁ 是 ...": single characters between space pieces, a sequence the encoder never
saw in pre-training (it read "北京是中国的首都", as pieces "▁ 北京 是中国 的 首都").

`joined_spans` wraps a span getter so that the encoder reads the text as written: the
space between two adjacent tokens goes when the character before it and the character
after it are both CJK. The spans it returns belong to a copy of the Doc with the same
tokens and only those spaces removed, so spacy-transformers' alignment (by the
tokenizer's offset mapping) maps each word piece back to the tokens whose characters it
covers: a piece of two characters aligns to both tokens, and every token keeps its place.
A Doc with no such space is given as it is, so other text reaches the encoder unchanged.

CJK here: Han, Hiragana, Katakana, Bopomofo, CJK punctuation and symbols, fullwidth
forms. In a Doc with any of those, the general punctuation of Chinese and Japanese text
(the middle dot of transliterated names, dashes, curly quotes, the ellipsis) counts as
CJK too. Hangul does not: Korean is written with spaces between words, and the spaces
between Korean tokens are the text's own.

`joined_spaces` drops the spaces between words that a predicate joins; the lexicon
backend's Chinese and Japanese output (`either_cjk`) and the EAT gloss (`both_cjk`) use it
too.
"""
import re
from typing import Callable, Dict, List, Optional, Sequence

from spacy.tokens import Doc, Span

SpanGetter = Callable[[List[Doc]], List[List[Span]]]

_CJK = (
    "\u2e80-\u2fdf\u2ff0-\u2fff"  # radicals, ideographic description characters
    "\u3001-\u303f"  # CJK symbols and punctuation, without the ideographic space
    "\u3040-\u30ff\u31f0-\u31ff"  # Hiragana, Katakana
    "\u3100-\u312f\u3190-\u31ef"  # Bopomofo, Kanbun, CJK strokes
    "\u3200-\u33ff"  # enclosed CJK letters and months, CJK compatibility
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han
    "\ufe10-\ufe1f\ufe30-\ufe4f"  # vertical forms, CJK compatibility forms
    "\uff01-\uff9f\uffe0-\uffef"  # fullwidth forms, halfwidth punctuation and Katakana
    "\U00016fe0-\U00016fff\U0001b000-\U0001b16f\U0001f200-\U0001f2ff"  # ideographic symbols, kana, enclosed
    "\U00020000-\U0002fa1f\U00030000-\U000323af"  # Han extensions B-H, compatibility supplement
)
_SHARED_PUNCT = "\u00b7\u2010-\u2027"  # middle dot; dashes, quotes, bullets, ellipsis
CJK_CHAR = re.compile(f"[{_CJK}]")
CJK_OR_SHARED_CHAR = re.compile(f"[{_CJK}{_SHARED_PUNCT}]")


def encoder_spaces(doc: Doc) -> Optional[List[bool]]:
    """Whether each token of `doc` is followed by a space in the encoder's text; None when
    that text is the Doc's own (no space between two CJK characters)."""
    if not CJK_CHAR.search(doc.text):
        return None
    own = [bool(token.whitespace_) for token in doc]
    spaces = joined_spaces([token.text for token in doc], own, both_cjk_or_shared)
    return spaces if spaces != own else None


def joined_spaces(words: Sequence[str], spaces: Sequence[bool], joins: Callable[[str, str], bool]) -> List[bool]:
    """`spaces` (whether each word is followed by a space) without the spaces between two
    words where joins(last character before, first character after) holds; the last
    word's space is kept."""
    joined = [space and not joins(word[-1:], after[:1]) for word, after, space in zip(words, words[1:], spaces)]
    return joined + list(spaces[len(joined):])  # the last word has none after it


def both_cjk(left: str, right: str) -> bool:
    """Both characters are CJK: the space between two CJK words goes."""
    return CJK_CHAR.match(left) is not None and CJK_CHAR.match(right) is not None


def either_cjk(left: str, right: str) -> bool:
    """One of the characters is CJK: no space next to a CJK word."""
    return CJK_CHAR.match(left) is not None or CJK_CHAR.match(right) is not None


def both_cjk_or_shared(left: str, right: str) -> bool:
    """Both characters are CJK or the punctuation Chinese and Japanese share with other
    scripts: in a Doc with CJK text, that punctuation is part of it."""
    return CJK_OR_SHARED_CHAR.match(left) is not None and CJK_OR_SHARED_CHAR.match(right) is not None


def encoder_doc(doc: Doc) -> Doc:
    """`doc` as the encoder reads it: a Doc with the same tokens and the spaces between CJK
    characters removed; `doc` itself when there are none."""
    spaces = encoder_spaces(doc)
    if spaces is None:
        return doc
    return Doc(doc.vocab, words=[token.text for token in doc], spaces=spaces)


def joined_spans(get_spans: SpanGetter) -> SpanGetter:
    """A span getter giving the spans of `get_spans` (same tokens, same order), taken from
    `encoder_doc` of their Doc: the encoder reads CJK text without the spaces."""

    def get_joined_spans(docs: List[Doc]) -> List[List[Span]]:
        copies: Dict[int, Doc] = {}  # one copy per Doc, shared by its (overlapping) spans
        joined = []
        for doc_spans in get_spans(docs):
            joined.append([_in_copy(span, copies) for span in doc_spans])
        return joined

    return get_joined_spans


def _in_copy(span: Span, copies: Dict[int, Doc]) -> Span:
    doc = span.doc
    if id(doc) not in copies:
        copies[id(doc)] = encoder_doc(doc)
    copy = copies[id(doc)]
    return span if copy is doc else copy[span.start : span.end]
