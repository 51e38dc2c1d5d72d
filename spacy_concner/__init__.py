"""spacy-concner: cross-lingual NER with contrastive learning and distillation for spaCy.

Installed, spaCy finds the plugin's factories, architectures, readers, batchers, losses,
schedules and loggers through entry points; `import spacy_concner` registers them too,
so that a copy that is on the path but not installed works the same.
"""
__version__ = "0.1.0"

from . import architectures, eat, losses, mcl_ner, pair_grid, pairs, pipeline, pooling, read_once, schedules, training_log  # noqa: E402,F401
