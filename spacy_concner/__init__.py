"""spacy-concner: cross-lingual NER with contrastive learning and distillation for spaCy.

Installed, spaCy finds the plugin's factories, architectures, readers, batchers and
losses through entry points.
"""
__version__ = "0.1.0"
