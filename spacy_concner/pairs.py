"""Paired training data: an English Doc and its translation, kept in the same batch.

The pair key travels in `doc.user_data[PAIR_KEY]` (DocBins store user data).
"""
PAIR_KEY = "concner_pair"
