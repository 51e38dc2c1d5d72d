"""Dictionary gloss into English: the `eat` backend for languages without MT.

Target words are replaced, longest dictionary phrase first, by the English of the pair's
reversed lexicon (translate/lexicon.py: FreeDict eng-xxx read the other way round, xxx-eng
where there is one; CC-CEDICT for Chinese, matched over characters, which also segments
the text). Words the dictionaries lack, often names, are copied unchanged. Every English
word records the target words it glosses, so the alignment is exact by construction.
"""
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

from spacy.tokens import Doc
from spacy.util import registry

from ..cjk import both_cjk, joined_spaces
from ..translate import CHARACTER_LANGS
from ..translate.lexicon import DICTD_DIR, MAX_PHRASE, Lexicon, has_letter, load_lexicon, same_initial_case
from ..translate.text import detokenize, target_lang
from .alignment import AlignedText

# CC-CEDICT's longer headwords are names and idioms of up to about 8 characters
MAX_CHARACTERS = 8
_SENTENCE_END = {".", "!", "?", "。", "！", "？"}


class DictionaryGloss:
    def __init__(self, lexicon: Lexicon, lang: str):
        self.lexicon = lexicon
        self.joiner = "" if lang in CHARACTER_LANGS else " "
        self.limit = MAX_CHARACTERS if lang in CHARACTER_LANGS else MAX_PHRASE

    def __call__(self, docs: Iterable[Doc]) -> Iterator[AlignedText]:
        for doc in docs:
            yield self.gloss([token.text for token in doc])

    def gloss(self, words: Sequence[str]) -> AlignedText:
        """The English gloss of the words, each English word aligned to the words it glosses."""
        english: List[str] = []
        sources: List[Tuple[int, ...]] = []
        i = 0
        while i < len(words):
            n, translation = self._match(words, i)
            glossed = (translation or words[i]).split()  # a whitespace token glosses to nothing
            english.extend(glossed)
            sources.extend([tuple(range(i, i + n))] * len(glossed))
            i += n
        return aligned_text(english, sources)

    def _match(self, words: Sequence[str], i: int) -> Tuple[int, Optional[str]]:
        """The longest phrase from word i the lexicon knows and its English; (1, None) if
        none. A capitalised word inside a sentence is looked up with its exact case only
        (names stay names, "Van" is not "van"); the first word of a sentence in any case,
        and its translation takes its capital."""
        if not has_letter(words[i]):
            return 1, None
        initial = i == 0 or words[i - 1] in _SENTENCE_END
        exact_case = words[i][:1].isupper() and not initial
        n, translation = self.lexicon.longest_match(words, i, self.limit, exact_case, self.joiner)
        if translation and initial:
            translation = same_initial_case(translation, words[i])
        return n, translation


def aligned_text(words: List[str], sources: List[Tuple[int, ...]]) -> AlignedText:
    """The words as English text, each word a piece aligned to its sources."""
    # English spacing, but none between two copied Chinese or Japanese characters: an
    # unknown name stays one word, and English words stay apart from it
    spaces = joined_spaces(words, detokenize(words), both_cjk)
    text, pieces = "", []
    for word, space, source in zip(words, spaces, sources):
        pieces.append((len(text), len(text) + len(word), source))
        text += word + (" " if space else "")
    return AlignedText(text, pieces)


@registry.misc("spacy_concner.eat_gloss.v1")
def make_eat_gloss(pair: str, cache_dir: Optional[str] = None, dictd_dir: str = str(DICTD_DIR)) -> DictionaryGloss:
    """An `eat` backend: the dictionary gloss of a pair into English ("deu-eng", "nld-eng",
    "ara-eng", "hin-eng", "zho-eng"); the parsed dictionaries are cached in cache_dir
    (default $SPACY_CONCNER_LEXICONS, else assets/lexicons)."""
    return DictionaryGloss(load_lexicon(pair, cache_dir, dictd_dir), source_lang(pair))


def source_lang(pair: str) -> str:
    """The spaCy language code of a pair's source: "deu-eng" -> "de"."""
    return target_lang(pair.split("-", 1)[0])
