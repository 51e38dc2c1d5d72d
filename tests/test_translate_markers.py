"""Marker codecs: any tokens and entity spans round-trip; the rule for split entities."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_concner.translate.markers import InlineCodec, MarkerError, WordBlankCodec, merge_pieces

WORD = st.text(min_size=1, max_size=6).filter(lambda w: w.strip() == w and w and "\0" not in w)
LABEL = st.from_regex(r"[A-Z]{1,5}", fullmatch=True)


@st.composite
def sentences(draw):
    """(words, spaces, entities as token spans): segments of O words and entities."""
    words, ents = [], []
    for _ in range(draw(st.integers(1, 6))):
        segment = draw(st.lists(WORD, min_size=1, max_size=3))
        if draw(st.booleans()):
            ents.append((len(words), len(words) + len(segment), draw(LABEL)))
        words.extend(segment)
    spaces = draw(st.lists(st.booleans(), min_size=len(words), max_size=len(words)))
    return words, spaces, ents


def char_spans(words, spaces, ents):
    starts, position = [], 0
    for word, space in zip(words, spaces):
        starts.append(position)
        position += len(word) + space
    ends = [start + len(word) for start, word in zip(starts, words)]
    return "".join(w + " " * s for w, s in zip(words, spaces)), [(starts[s], ends[e - 1], label) for s, e, label in ents]


@settings(max_examples=150, deadline=None)
@given(sentences())
def test_word_blank_codec_round_trips(sentence):
    words, spaces, ents = sentence
    text, expected = char_spans(words, spaces, ents)
    decoded, pieces = WordBlankCodec().decode(WordBlankCodec().encode(words, spaces, ents))
    spans, n_split = merge_pieces(decoded, pieces)
    assert decoded == text
    assert n_split == 0
    assert [(start, end, ents[k][2]) for k, (start, end) in sorted(spans.items())] == expected


@settings(max_examples=150, deadline=None)
@given(sentences())
def test_inline_codec_round_trips(sentence):
    words, spaces, ents = sentence
    text, expected = char_spans(words, spaces, ents)
    decoded, spans = InlineCodec().decode(InlineCodec().encode(words, spaces, ents), {e[2] for e in ents})
    assert (decoded, spans) == (text, expected)


def test_word_blank_escapes_apertium_specials():
    encoded = WordBlankCodec().encode(["a[b]", "$5", "^x/@<>{}\\"], [True, True, False], [(1, 2, "MISC")])
    assert encoded == r"a\[b\] [[t:0]]\$5[[/]] \^x\/\@\<\>\{\}\\"


def test_word_blank_decodes_superblanks_and_merged_blanks():
    text, pieces = WordBlankCodec().decode(" [[t:1; t:2]]UE[[/]] rehusa.[][\n]")
    assert text == " UE rehusa.\n"
    assert pieces == [(1, 3, 1)]


def test_word_blank_decode_all_keeps_every_index_of_merged_words():
    text, pieces = WordBlankCodec().decode_all(" [[t:1; t:2]]UE[[/]] [[t:3]]rehusa[[/]].[][\n]")
    assert text == " UE rehusa.\n"
    assert pieces == [(1, 3, (1, 2)), (4, 10, (3,))]


def test_split_entity_spans_the_gap_when_no_other_entity_is_inside():
    text = "Banco central de España"
    spans, n_split = merge_pieces(text, [(0, 5, 0), (17, 23, 0)])
    assert spans == {0: (0, 23)} and n_split == 1


def test_split_entity_keeps_its_longest_part_around_another_entity():
    text = "Nueva Juan York"
    spans, n_split = merge_pieces(text, [(0, 5, 0), (6, 10, 1), (11, 15, 0)])
    assert spans == {0: (0, 5), 1: (6, 10)} and n_split == 1


@pytest.mark.parametrize("output, reason", [
    ("<PER> Peter fue a Lima", "unbalanced markers"),
    ("<PER> Peter <LOC> Lima </LOC> </PER>", "nested markers"),
    ("Peter fue </PER>", "unbalanced markers"),
])
def test_inline_codec_reports_broken_markers(output, reason):
    with pytest.raises(MarkerError, match=reason):
        InlineCodec().decode(output, {"PER", "LOC"})


def test_inline_codec_tolerates_spaced_markers_and_ignores_unknown_labels():
    text, spans = InlineCodec().decode("< PER > Peter </ PER > a <unk> &amp; co", {"PER"})
    assert text == "Peter a <unk> & co"
    assert spans == [(0, 5, "PER")]
