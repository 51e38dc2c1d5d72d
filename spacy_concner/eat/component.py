"""The `eat` component: translate-test NER through an English pipeline and a word alignment."""
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Set, Tuple, Union

from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc
from spacy.util import SimpleFrozenList, minibatch

from ..decoding import pipeline_decoding
from ..loading import load_pipeline
from .alignment import AlignedText, token_sources
from .projection import project_entities

ENGLISH_FOLDER = "english"
Translator = Callable[[Iterable[Doc]], Iterator[AlignedText]]


@Language.factory(
    "eat",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type"],
    default_config={"scorer": {"@scorers": "spacy.ner_scorer.v1"}},
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_eat(
    nlp: Language, name: str, english: str, translator: Translator, scorer: Optional[Callable]
) -> "EntityAlignedTranslation":
    """english: the English NER pipeline (a folder or an installed package), loaded when
    first needed; a saved pipeline holds its own copy, which it loads instead.
    translator: the backend into English, spacy_concner.eat_apertium.v1 or
    spacy_concner.eat_gloss.v1."""
    return EntityAlignedTranslation(name, english, translator, scorer)


class EntityAlignedTranslation(Pipe):
    """Entities for target-language Docs found in their English translation (EAT's
    translate-test): each Doc is translated into English with a word alignment, the
    English pipeline tags the translation, and each English entity is projected back onto
    the target words it came from (projection.py) or grounded in the target text
    (grounding.py). Writes `doc.ents`; has nothing to train."""

    def __init__(self, name: str, english: str, translator: Translator, scorer: Optional[Callable]):
        self.name = name
        self.english_source = english
        self.translator = translator
        self.scorer = scorer
        self._english: Optional[Language] = None

    @property
    def english(self) -> Language:
        """The English pipeline, loaded on first use: spacy.load of a saved pipeline
        replaces it with the copy in the component's folder before that."""
        if self._english is None:
            self._english = load_pipeline(self.english_source)
        return self._english

    @property
    def decoding(self) -> Optional[str]:
        """The tag decoding of the English pipeline (spacy_concner.decoding)."""
        return pipeline_decoding(self.english)

    @decoding.setter
    def decoding(self, decoding: str) -> None:
        pipeline_decoding(self.english, decoding)

    def __call__(self, doc: Doc) -> Doc:
        self.annotate([doc])
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """The Docs with their entities, translated and tagged batch_size at a time."""
        for batch in minibatch(stream, batch_size):
            self.annotate(batch)
            yield from batch

    def annotate(self, docs: List[Doc]) -> None:
        """Translate, tag and project a batch of Docs; a Doc whose translation failed gets
        no entities, with a warning."""
        for doc, (translation, english, sources) in zip(docs, self.tagged_translations(docs)):
            if translation.error:
                warnings.warn(f"eat: no translation of {doc.text[:60]!r} ({translation.error}): no entities")
            doc.ents = project_entities(doc, english, sources)

    def tagged_translations(self, docs: List[Doc]) -> Iterator[Tuple[AlignedText, Doc, List[Set[int]]]]:
        """For each Doc: its translation, the English pipeline's Doc of it (with its
        entities), and for each English token the target tokens it translates."""
        translations = list(self.translator(docs))
        english_docs = self.english.pipe(self.english.make_doc(t.text) for t in translations)
        for translation, english in zip(translations, english_docs):
            yield translation, english, token_sources(english, translation.pieces)

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()) -> None:
        """The English pipeline, into the component's folder: the saved pipeline is self-contained."""
        Path(path).mkdir(parents=True, exist_ok=True)
        self.english.to_disk(Path(path) / ENGLISH_FOLDER)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = SimpleFrozenList()) -> "EntityAlignedTranslation":
        self._english = load_pipeline(str(Path(path) / ENGLISH_FOLDER))
        return self
