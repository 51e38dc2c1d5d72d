"""Apertium into English: the `eat` backend for Spanish (apertium-eng-spa's spa-eng mode).

Every target word is wrapped in a word-bound blank of its own, `[[t:3]]Casa[[/]]`;
Apertium carries the blank onto the word's translation through reordering ("la Casa
Blanca" -> "the [[t:4]]White[[/]] [[t:3]]House[[/]]"), and a blank naming several words
("t:3; t:4") onto the translation of a multiword. One pipeline in null-flush mode serves
the component's life (translate/apertium.py): Apertium's output for a sentence can
depend on the sentences before it (after an unbalanced quote), which is rare.
"""
from pathlib import Path
from typing import Iterable, Iterator, Union

from spacy.tokens import Doc
from spacy.util import minibatch, registry

from ..translate.apertium import MODES_DIR, ApertiumFailure, ApertiumProcess, installed_mode
from ..translate.markers import WordBlankCodec
from ..translate.text import normalize_space
from .alignment import AlignedText


class AlignedApertium:
    def __init__(self, pair: str, modes_dir: Path, timeout: float, batch_size: int):
        self.process = ApertiumProcess(installed_mode(pair, modes_dir), timeout)
        self.codec = WordBlankCodec()
        self.batch_size = batch_size

    def __call__(self, docs: Iterable[Doc]) -> Iterator[AlignedText]:
        for batch in minibatch(docs, self.batch_size):
            for output in self.process.translate_each([self._encode(doc) for doc in batch]):
                yield self._decode(output)

    def __del__(self):
        if hasattr(self, "process"):  # __init__ may have failed before starting one
            self.process.stop()

    def _encode(self, doc: Doc) -> str:
        """The Doc's words in Apertium's stream format, each but whitespace in its own blank."""
        words = [token.text for token in doc]
        blanks = [(token.i, token.i + 1, "") for token in doc if not token.is_space]
        return self.codec.encode(words, [bool(token.whitespace_) for token in doc], blanks)

    def _decode(self, output: Union[str, ApertiumFailure]) -> AlignedText:
        if isinstance(output, ApertiumFailure):
            return AlignedText("", error=str(output))
        text, pieces = self.codec.decode_all(output)
        text, pieces = normalize_space(text, pieces)
        return AlignedText(text, pieces)


@registry.misc("spacy_concner.eat_apertium.v1")
def make_eat_apertium(
    pair: str = "spa-eng", modes_dir: str = MODES_DIR, timeout: float = 10.0, batch_size: int = 32
) -> AlignedApertium:
    """An `eat` backend: Apertium from an installed mode into English (spa-eng)."""
    return AlignedApertium(pair, Path(modes_dir), timeout, batch_size)
