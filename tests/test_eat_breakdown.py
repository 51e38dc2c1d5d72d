"""benchmarks/eat_breakdown.py: EAT's ceiling, the English model on the translation, EAT
and the English model on the target text, with a dictionary gloss and an English entity
ruler whose entities are known in advance."""
import json

import spacy
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_concner.cli import app

from conftest import benchmark_module, write_freedict, write_keyed_docbin, write_ruler_pipeline

PATTERNS = [
    {"label": "PER", "pattern": "Anna Schmidt"},
    {"label": "LOC", "pattern": "White House"},
    {"label": "LOC", "pattern": "Berlin"},
    {"label": "LOC", "pattern": "Haus"},  # found in the German text; its gloss "House" is not a pattern
]
ENTRIES = {
    "the": "the /ðə/\nder, die, das <art>\n",
    "White House": "White House /wˈaɪt hˈaʊs/\nWeißes Haus <neut> [pol.]\n",
    "house": "house /hˈaʊs/\nHaus <neut>\n",
    "in": "in /ˈɪn/\nin <prp>\n",
}


def test_carried_entities_take_the_english_words_of_their_words_and_count_the_unaligned():
    breakdown = benchmark_module("eat_breakdown")
    gold = Doc(Vocab(), words="vi la Casa Blanca con Xochitl".split())
    gold.ents = [Span(gold, 2, 4, label="LOC"), Span(gold, 5, 6, label="PER")]
    english = Doc(Vocab(), words="saw the White House".split())
    carried, unaligned = breakdown.carried_into_english(gold, english, [{0}, {1}, {3}, {2}])
    assert [(span.text, span.label_) for span in carried] == [("White House", "LOC")]
    assert unaligned == 1  # nothing translates Xochitl


def test_breakdown_of_a_gloss_pipeline(tmp_path):
    english = write_ruler_pipeline(tmp_path / "en", "en", PATTERNS)
    dictd = write_freedict(tmp_path, "freedict-eng-deu", ENTRIES)
    pipeline = tmp_path / "de-eat"
    args = ["eat-pipeline", str(english), str(pipeline), "--lang", "de", "--dictd-dir", str(dictd),
            "--cache-dir", str(tmp_path / "cache")]
    assert CliRunner().invoke(app, args).exit_code == 0
    test = write_keyed_docbin(tmp_path / "test.spacy", [
        ("Anna Schmidt sah das Weißes Haus in Berlin .".split(), [(0, 2, "PER"), (4, 6, "LOC"), (7, 8, "LOC")]),
        ("Carla wohnt in Berlin .".split(), [(0, 1, "PER"), (3, 4, "LOC")]),
        ("Haus in Berlin .".split(), [(0, 1, "LOC"), (2, 3, "LOC")]),
    ])
    breakdown = benchmark_module("eat_breakdown")
    breakdown.main(pipeline, test, name="de", decoding=None, max_sents=0, batch_size=2, examples=8, threads=1,
                   results=tmp_path)
    (record,) = json.loads((tmp_path / "eat_breakdown.json").read_text())
    assert record["n_gold_entities"] == 7 and record["gold_unaligned"] == 0
    assert record["ceiling"]["f1"] == 100.0  # the gloss aligns every word
    # in the translation the ruler knows neither Carla nor "House"
    assert record["english_on_translation"]["recall"] == record["eat"]["recall"] == round(100 * 5 / 7, 2)
    assert record["eat"]["precision"] == 100.0
    # in the German text it knows Haus, also inside "Weißes Haus" (a false LOC there)
    assert record["en_on_target"]["precision"] == round(100 * 5 / 6, 2)
    assert record["en_on_target"]["recall"] == round(100 * 5 / 7, 2)
    assert [(e["english"], e["lost"]) for e in record["examples"]] == [("House in Berlin.", ["Haus (LOC)"])]
    markdown = (tmp_path / "eat_breakdown.md").read_text()
    assert "| de |" in markdown and "lost: Haus (LOC)" in markdown
