"""Code-switched view (mCL-NER, Mo et al., AAAI 2024, arXiv 2308.09073): the English
sentence with a random share of its words and phrases replaced by dictionary translations.

The words come from the pair's dictionaries (the lexicon backend's) or, for a pair without
dictionaries, from its Apertium mode (eng-spa; apertium_lexicon.py). The phrase rules
are the lexicon backend's: the longest known phrase that lies wholly inside one entity or
wholly outside entities is a unit, entity words count only when the lexicon knows them
with their exact case. Each known unit is switched with probability `ratio`; a switched
entity unit stays in its entity, so spans stay contiguous and keep their labels. The
output keeps the source's pair key and pairs with it like a translation.

The draws of a sentence are seeded by `seed` and its pair key alone, so a sentence is
switched the same way whatever chunk or order it is translated in.
"""
from pathlib import Path
from typing import Optional

from spacy.tokens import Doc

from ..pairs import sentence_random
from . import Translation, translators
from .apertium import MODES_DIR
from .apertium_lexicon import apertium_lexicon
from .lexicon import DICTD_DIR, Lexicon, LexiconTranslator, dictionary_pairs, load_lexicon, units_doc
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
    modes_dir: str = MODES_DIR,
    timeout: float = 10.0,
) -> CodeSwitcher:
    """Code-switched English: each word or phrase of the pair's lexicon replaced by its
    translation with probability `ratio`, seeded by `seed` and each sentence's pair key.
    The lexicon: the pair's dictionaries (see the lexicon backend; `cache_dir`,
    `dictd_dir`), else the word translations of its Apertium mode (eng-spa; `modes_dir`,
    `timeout` as for the apertium translator)."""
    if pair in dictionary_pairs():
        lexicon = load_lexicon(pair, cache_dir, dictd_dir)
    else:
        lexicon = apertium_lexicon(pair, Path(modes_dir), timeout)
    return CodeSwitcher(pair, lexicon, ratio, seed)
