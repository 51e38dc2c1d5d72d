"""spacy-concner: cross-lingual NER with contrastive learning and distillation for spaCy.

Importing the package registers its factories, architectures, readers, batchers and
losses; installed, spaCy finds them through entry points without this import.
"""
from . import architectures, losses, pairs, pipeline  # noqa: F401

__version__ = "0.1.0"
