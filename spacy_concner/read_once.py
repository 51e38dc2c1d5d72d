"""A spacy.Corpus that reads its DocBins once and keeps the Docs
(spacy_concner.ReadOnceCorpus.v1; PairedCorpus reads its files with it too).

A training run reads its training corpus every epoch, its dev corpus at every evaluation,
and both more than once to initialise, and each read decodes every Doc's user data again
(srsly looks up its msgpack decoders in Python's entry points for each). Training never
writes to the reference Docs, so the Examples of every epoch can share them.
"""
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Corpus, Example
from spacy.util import registry
from spacy.vocab import Vocab

from .config_errors import config_error


class ReadOnceCorpus(Corpus):
    """spacy.Corpus that reads its DocBins once per vocab and keeps the Docs."""

    def __init__(self, path: Path, **options):
        super().__init__(path, **options)
        self.cache: Optional[Tuple[Vocab, List[Doc]]] = None  # the vocab and its Docs

    def read_docbin(self, vocab: Vocab, locs: Iterable[Union[str, Path]]) -> Iterator[Doc]:
        if self.cache is None or self.cache[0] is not vocab:
            self.cache = (vocab, list(super().read_docbin(vocab, locs)))
        yield from self.cache[1]


@registry.readers("spacy_concner.ReadOnceCorpus.v1")
def create_read_once_corpus(
    path: Optional[Path],
    gold_preproc: bool = False,
    max_length: int = 0,
    limit: int = 0,
    augmenter: Optional[Callable] = None,
) -> Callable[[Language], Iterable[Example]]:
    """spacy.Corpus.v1 (the same arguments), its Docs read once per vocab and kept in
    memory: for the corpora of this project's runs (samples, unlabelled target text and
    dev sets of thousands of sentences), not for corpora that do not fit in memory."""
    if path is None:
        raise config_error(
            "A corpus has no path: set it in the config or on the command line, "
            "e.g. --paths.train corpus/de/distill.spacy or --paths.dev corpus/en/dev.spacy"
        )
    return ReadOnceCorpus(path, gold_preproc=gold_preproc, max_length=max_length, limit=limit, augmenter=augmenter)
