"""Marker codecs: entities written into MT input, read back as character spans of the output.

- `WordBlankCodec` (Apertium): every entity word is wrapped in a word-bound blank,
  `[[t:K]]word[[/]]`, K the entity's index. Apertium carries the blank onto the word's
  translation through reordering, so the pieces of an entity are found wherever they land.
  With every word in a blank of its own, `decode_all` gives a word alignment (EAT).
- `InlineCodec` (seq2seq models): each entity is wrapped as `<LABEL> words </LABEL>`; the
  model may lose or mangle markers, which decoding reports as a `MarkerError`.

Both round-trip: decoding an encoding gives back the text and the entities' spans.
"""
import html
import re
from typing import Dict, Iterable, List, Sequence, Tuple

from .text import CharSpan

TokenSpan = Tuple[int, int, str]  # start token, end token, label
Piece = Tuple[int, int, int]  # start char, end char, entity index
AlignedPiece = Tuple[int, int, Tuple[int, ...]]  # start char, end char, indices of a word's blank
_APERTIUM_SPECIAL = re.compile(r"([\\\[\]^$/@<>{}])")
_WORD_BLANK = re.compile(r"\[\[(.*?)\]\]")
_ENTITY_ID = re.compile(r"t:(\d+)")


class MarkerError(ValueError):
    """The markers of an MT output do not decode to entities (lost, unbalanced, nested)."""


def entity_of_token(n_tokens: int, ents: Sequence[TokenSpan]) -> List[int]:
    """For each token, the index of the entity it belongs to, or -1."""
    owner = [-1] * n_tokens
    for k, (start, end, _) in enumerate(ents):
        owner[start:end] = [k] * (end - start)
    return owner


class WordBlankCodec:
    def encode(self, words: Sequence[str], spaces: Sequence[bool], ents: Sequence[TokenSpan]) -> str:
        """Apertium stream format: special characters escaped, entity words in word-bound blanks."""
        out = []
        for word, space, k in zip(words, spaces, entity_of_token(len(words), ents)):
            escaped = apertium_escape(word)
            out.append(f"[[t:{k}]]{escaped}[[/]]" if k >= 0 else escaped)
            out.append(" " if space else "")
        return "".join(out)

    def decode(self, stream: str) -> Tuple[str, List[Piece]]:
        """Plain text and the character span of each word that carries an entity's blank;
        merged words carry several ("t:0; t:1"): the first wins."""
        text, pieces = self.decode_all(stream)
        return text, [(start, end, indices[0]) for start, end, indices in pieces]

    def decode_all(self, stream: str) -> Tuple[str, List[AlignedPiece]]:
        """Plain text and the character span of each word that carries a blank, with all
        the indices its blank names."""
        text: List[str] = []
        pieces: List[AlignedPiece] = []
        length, opened, i = 0, None, 0
        while i < len(stream):
            blank = _WORD_BLANK.match(stream, i) if stream.startswith("[[", i) else None
            if blank:
                if blank.group(1) == "/" and opened is not None:
                    pieces.append((opened[0], length, opened[1]))
                    opened = None
                elif _ENTITY_ID.search(blank.group(1)):
                    opened = (length, tuple(int(k) for k in _ENTITY_ID.findall(blank.group(1))))
                i = blank.end()
                continue
            if stream[i] == "[":  # superblank: formatting kept verbatim
                i, chunk = _superblank(stream, i)
            elif stream[i] == "\\" and i + 1 < len(stream):
                chunk, i = stream[i + 1], i + 2
            else:
                chunk, i = stream[i], i + 1
            text.append(chunk)
            length += len(chunk)
        return "".join(text), pieces


def apertium_escape(text: str) -> str:
    """Text in Apertium stream format: its special characters escaped."""
    return _APERTIUM_SPECIAL.sub(r"\\\1", text)


def _superblank(stream: str, i: int) -> Tuple[int, str]:
    """The end of the superblank opening at i and its unescaped content."""
    content, i = [], i + 1
    while i < len(stream) and stream[i] != "]":
        if stream[i] == "\\":
            i += 1
        content.append(stream[i : i + 1])
        i += 1
    return i + 1, "".join(content)


def merge_pieces(text: str, pieces: Iterable[Piece]) -> Tuple[Dict[int, Tuple[int, int]], int]:
    """One character span per entity from the pieces of its words, and how many were split.

    Pieces of one entity separated only by whitespace are merged. An entity that MT split
    apart (other words in between) spans from its first to its last piece when no other
    entity lies in between; otherwise its longest contiguous part is kept.
    """
    pieces = sorted(pieces)
    by_entity: Dict[int, List[Tuple[int, int]]] = {}
    for start, end, k in pieces:
        groups = by_entity.setdefault(k, [])
        if groups and not text[groups[-1][1] : start].strip():
            groups[-1] = (groups[-1][0], end)
        else:
            groups.append((start, end))
    spans, n_split = {}, 0
    for k, groups in by_entity.items():
        first, last = groups[0][0], groups[-1][1]
        if len(groups) > 1:
            n_split += 1
            if any(p[2] != k and first <= p[0] < last for p in pieces):
                spans[k] = max(groups, key=lambda g: g[1] - g[0])
                continue
        spans[k] = (first, last)
    return spans, n_split


class InlineCodec:
    def encode(self, words: Sequence[str], spaces: Sequence[bool], ents: Sequence[TokenSpan]) -> str:
        """Text with each entity as `<LABEL> words </LABEL>`; &, < and > are HTML-escaped."""
        opening = {start: label for start, _, label in ents}
        closing = {end - 1: label for _, end, label in ents}
        out = []
        for i, (word, space) in enumerate(zip(words, spaces)):
            if i in opening:
                out.append(f"<{opening[i]}> ")
            out.append(html.escape(word, quote=False))
            if i in closing:
                out.append(f" </{closing[i]}>")
            out.append(" " if space else "")
        return "".join(out)

    def decode(self, text: str, labels: Iterable[str]) -> Tuple[str, List[CharSpan]]:
        """Plain text and entity spans; markers of other labels are left as text."""
        names = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
        marker = re.compile(rf"<\s*(/?)\s*({names})\s*>") if names else None
        out, spans, opened, position = "", [], None, 0
        for match in marker.finditer(text) if marker else ():
            out += html.unescape(text[position : match.start()])
            position = match.end()
            closing, label = match.group(1) == "/", match.group(2)
            if not closing:
                if opened is not None:
                    raise MarkerError("nested markers")
                opened = (len(out), label)
                position += text.startswith(" ", position)
                continue
            if opened is None or opened[1] != label:
                raise MarkerError("unbalanced markers")
            out = out[:-1] if out.endswith(" ") else out
            spans.append((opened[0], len(out), label))
            opened = None
        if opened is not None:
            raise MarkerError("unbalanced markers")
        return out + html.unescape(text[position:]), spans
