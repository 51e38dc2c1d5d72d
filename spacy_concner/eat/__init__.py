"""EAT translate-test, offline: entity-aligned translation (Zhang et al., Findings of EMNLP 2025).

The `eat` component translates a target-language Doc into English with a word alignment
(alignment.py; backends: Apertium, apertium.py, and a dictionary gloss, gloss.py), tags
the English text with an English NER pipeline, and projects each English entity back onto
the target words through the alignment (projection.py), grounding the entities whose
words have no alignment in the target text (grounding.py). No LLM, no web MT: the
alignment comes by construction instead of from prompting. `python -m spacy_concner
eat-pipeline` (cli.py) builds a pipeline with the component.
"""
from . import apertium, component, gloss  # noqa: F401  (register the factory and the backends)
