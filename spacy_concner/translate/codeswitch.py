"""Code-switched view (mCL-NER, Mo et al., AAAI 2024, arXiv 2308.09073): the English
sentence with a random share of its words and phrases replaced by dictionary translations.

The dictionaries and the phrase rules are the lexicon backend's: the longest dictionary
phrase that lies wholly inside one entity or wholly outside entities is a unit, entity
words count only when the dictionary knows them with their exact case. Each unit the
dictionary knows is switched with probability `ratio`; a switched entity unit stays in its
entity, so spans stay contiguous and keep their labels. The output keeps the source's
pair key and pairs with it like a translation.

The draws of a sentence are seeded by `seed` and its pair key alone, so a sentence is
switched the same way whatever chunk or order it is translated in.
"""
from typing import Optional

from spacy.tokens import Doc

from ..pairs import sentence_random
from . import Translation, translators
from .lexicon import DICTD_DIR, Lexicon, LexiconTranslator, load_lexicon, units_doc
from .text import detokenize

# CoSDA-ML's replacement ratio, which mCL-NER's code-switching follows
DEFAULT_RATIO = 0.5


class CodeSwitcher(LexiconTranslator):
    def __init__(self, pair: str, lexicon: Lexicon, ratio: float = DEFAULT_RATIO, seed: int = 0):
        if not 0 <= ratio <= 1:
            raise ValueError(f"the code-switch ratio must be in [0, 1], got {ratio}")
        super().__init__(pair, lexicon)
        self.ratio = ratio
        self.seed = seed

    def translate(self, source: Doc) -> Translation:
        draws = sentence_random(self.seed, source)
        units, notes = self.rewrite(source, lambda: draws.random() < self.ratio, "switched")
        # English stays the matrix language: English spacing, also for Chinese targets
        return Translation(source, units_doc(self.vocab, units, detokenize, source), notes=notes)


@translators.register("codeswitch.v1")
def make_codeswitch(
    pair: str,
    ratio: float = DEFAULT_RATIO,
    seed: int = 0,
    cache_dir: Optional[str] = None,
    dictd_dir: str = str(DICTD_DIR),
) -> CodeSwitcher:
    """Code-switched English: each dictionary word or phrase of the pair's lexicon (see
    the lexicon backend) replaced by its translation with probability `ratio`, seeded by
    `seed` and each sentence's pair key."""
    return CodeSwitcher(pair, load_lexicon(pair, cache_dir, dictd_dir), ratio, seed)
