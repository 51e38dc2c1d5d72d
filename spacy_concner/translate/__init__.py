"""Translation with label projection (MulDA's labelled-sequence translation).

A translator takes English Docs with entities and yields one `Translation` per Doc: the
target-language Doc with the projected entities and the source's pair key, or the reason
the sentence failed (failures are reported, never silently dropped).

Backends live in the `translators` registry; third parties add theirs through the
`spacy_concner_translators` entry point group. Built in: "apertium.v1", "lexicon.v1",
"hf_seq2seq.v1", and "codeswitch.v1", which makes a code-switched view rather than a
translation.
"""
import inspect
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional, Protocol

import catalogue
from spacy.tokens import Doc

from .text import split_characters

CHARACTER_LANGS = ("zh", "ja")
translators = catalogue.create("spacy_concner", "translators", entry_points=True)


class BackendMissing(RuntimeError):
    """A translation backend (program, dictionary or library) is not installed or does not run."""


@dataclass
class Translation:
    source: Doc
    doc: Optional[Doc]  # None when the sentence failed
    error: Optional[str] = None  # why it failed
    notes: Counter = field(default_factory=Counter)  # backend statistics summed in the report


class Translator(Protocol):
    lang: str  # spaCy code of the target language

    def __call__(self, docs: Iterable[Doc]) -> Iterator[Translation]:
        ...


def get_translator(name: str, **config) -> Translator:
    """The translator registered as `name` ("apertium" means "apertium.v1"), built from config;
    ValueError for an unknown name, or settings the translator lacks or does not take."""
    full_name = name if ".v" in name else f"{name}.v1"
    try:
        factory = translators.get(full_name)
    except catalogue.RegistryError:
        known = ", ".join(sorted(translators.get_all()))
        raise ValueError(f"Unknown translator {name!r}; registered: {known}") from None
    settings = inspect.signature(factory)
    try:
        settings.bind(**config)
    except TypeError as error:
        raise ValueError(f"The {name!r} translator: {error} (its settings: {', '.join(settings.parameters)})") from None
    return factory(**config)


def translate_docs(translator: Translator, docs: Iterable[Doc], split_chars: Optional[bool] = None) -> Iterator[Translation]:
    """The translator's output; Chinese and Japanese split into one token per character by
    default (WikiANN's tokenisation), so that training data matches the test sets."""
    if split_chars is None:
        split_chars = translator.lang in CHARACTER_LANGS
    for translation in translator(docs):
        if split_chars and translation.doc is not None:
            translation.doc = split_characters(translation.doc)
        yield translation


from . import apertium, codeswitch, hf_seq2seq, lexicon  # noqa: E402,F401  (register the built-ins)
