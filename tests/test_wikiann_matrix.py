"""benchmarks/wikiann_matrix.py on a tiny WikiANN folder (de and en in Latin, ru in
Cyrillic and gzip-compressed, zh in Han, one character per token): script detection,
the records, resuming, the report grouped by script, and join_cjk = false."""
import gzip
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import spacy
from typer.testing import CliRunner

from conftest import write_ruler_pipeline

ROOT = Path(__file__).parents[1]
TESTS = {
    "de": [("Anna wohnt in Paris .", "B-PER O O B-LOC O")],
    "en": [
        ("Anna lives in Paris .", "B-PER O O B-LOC O"),
        ("Boris flew to Lima .", "B-PER O O B-LOC O"),
        ("Carla said nothing .", "B-PER O O O"),
    ],
    "ru": [
        ("Анна живёт в Москве .", "B-PER O O B-LOC O"),
        ("Boris Johnson посетил Москве .", "B-PER I-PER O B-LOC O"),
    ],
    "zh": [
        ("北 京 是 中 国 的 首 都 。", "B-LOC I-LOC O B-LOC I-LOC O O O O"),
        ("安 娜 住 在 北 京 。", "B-PER I-PER O O B-LOC I-LOC O"),
    ],
}
PATTERNS = [
    {"label": "PER", "pattern": "Anna"},
    {"label": "PER", "pattern": "Carla"},
    {"label": "PER", "pattern": "Анна"},
    {"label": "LOC", "pattern": "Paris"},
    {"label": "LOC", "pattern": "Москве"},
    {"label": "LOC", "pattern": [{"ORTH": "北"}, {"ORTH": "京"}]},
    {"label": "LOC", "pattern": [{"ORTH": "中"}, {"ORTH": "国"}]},
]


@pytest.fixture(scope="module")
def matrix():
    path = str(ROOT / "benchmarks")
    sys.path.insert(0, path)  # for its `from data_dir import ...`
    try:
        spec = importlib.util.spec_from_file_location("wikiann_matrix", ROOT / "benchmarks" / "wikiann_matrix.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(path)
    return module


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for lang, sentences in TESTS.items():
        folder = root / "wikiann" / lang
        folder.mkdir(parents=True)
        text = "\n\n".join(
            "\n".join(f"{word}\t{tag}" for word, tag in zip(words.split(), tags.split()))
            for words, tags in sentences
        ) + "\n"
        if lang == "ru":
            (folder / f"test-{lang}.tsv.gz").write_bytes(gzip.compress(text.encode("utf8")))
        else:
            (folder / f"test-{lang}.tsv").write_text(text, encoding="utf8")
    (root / "wikiann" / "xx").mkdir()  # a folder without a test file is no language
    return root


@pytest.fixture(scope="module")
def ruler_dir(tmp_path_factory) -> Path:
    """A multilingual pipeline whose entities are PATTERNS."""
    return write_ruler_pipeline(tmp_path_factory.mktemp("ruler") / "model", "xx", PATTERNS)


@pytest.fixture(scope="module")
def transformer_dir(tiny_bert_dir, tmp_path_factory) -> Path:
    """An untrained transformer (TransformerModel.v2, the tiny BERT) + ner pipeline."""
    from spacy.tokens import Doc
    from spacy.training import Example

    nlp = spacy.blank("xx")
    nlp.add_pipe("transformer", config={"model": {
        "@architectures": "spacy_concner.TransformerModel.v2", "name": str(tiny_bert_dir),
        "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 32, "stride": 24},
    }})
    nlp.add_pipe("ner", config={"model": {"tok2vec": {
        "@architectures": "spacy-transformers.TransformerListener.v1", "grad_factor": 1.0,
        "pooling": {"@layers": "reduce_mean.v1"},
    }}})
    doc = Doc(nlp.vocab, words=["Anna", "lives", "in", "Paris"], ents=["B-PER", "O", "O", "B-LOC"])
    nlp.initialize(lambda: [Example(Doc(nlp.vocab, words=[t.text for t in doc]), doc)])
    path = tmp_path_factory.mktemp("transformer") / "model"
    nlp.to_disk(path)
    return path


def test_script_of_letters(matrix):
    assert matrix.detect_script(["Москва", "is", "big"]) == "Cyrillic"
    assert matrix.detect_script(["東京", "は", "カタカナ"]) == "Kana"
    assert matrix.detect_script(["北", "京", "is"]) == "Han"
    assert matrix.detect_script(["서울", "A"]) == "Hangul"
    assert matrix.detect_script(["Ἀθῆναι"]) == "Greek"
    assert matrix.detect_script(["ＡＢ", "北"]) == "Latin"  # fullwidth Latin
    assert matrix.detect_script(["1990", "ª", "."]) == "Unknown"  # digits, ª: no script


def test_matrix_records_resume_and_report(matrix, data_dir, ruler_dir, tmp_path, monkeypatch):
    results = tmp_path / "results"
    models = [("ruler", str(ruler_dir))]
    records = matrix.run_matrix(models, data_dir, results, sentences=2, compare_join_cjk=True,
                                descriptions={"ruler": "an EntityRuler"}, echo=lambda line: None)
    by_lang = {r["lang"]: r for r in records}
    assert list(by_lang) == ["de", "en", "ru", "zh"]  # the folder without a test file is left out
    assert {lang: r["script"] for lang, r in by_lang.items()} == {
        "de": "Latin", "en": "Latin", "ru": "Cyrillic", "zh": "Han"}
    en = by_lang["en"]
    assert (en["model"], en["description"], en["test"], en["sentences"]) == (
        "ruler", "an EntityRuler", "wikiann/en/test-en.tsv", 2)
    assert (en["precision"], en["recall"], en["f1"]) == (100.0, 50.0, 66.67)  # Anna, Paris of 4
    assert en["f1_per_type"] == {"LOC": 66.67, "PER": 66.67}
    assert (en["n_gold_entities"], en["n_words"]) == (4, 10) and en["words_per_second"] > 0
    assert by_lang["ru"]["test"] == "wikiann/ru/test-ru.tsv.gz" and by_lang["ru"]["f1"] == 85.71
    assert by_lang["zh"]["f1"] == 85.71  # 北京 twice and 中国; 安娜 missed
    assert json.loads((results / "wikiann_matrix.json").read_text(encoding="utf8")) == records

    def no_scoring(*args, **kwargs):
        raise AssertionError("a recorded language scored again")

    monkeypatch.setattr(matrix, "score_language", no_scoring)
    assert matrix.run_matrix(models, data_dir, results, sentences=2, echo=lambda line: None) == records
    monkeypatch.undo()
    again = matrix.run_matrix(models, data_dir, results, sentences=3, langs=["en"], echo=lambda line: None)
    assert [(r["lang"], r["sentences"]) for r in again] == [("de", 1), ("en", 3), ("ru", 2), ("zh", 2)]
    assert next(r for r in again if r["lang"] == "en")["f1"] == 75.0  # 3 of 5, replacing the record

    report = matrix.markdown(again)
    table = report[report.index("## F1 per language"):]
    rows = [line.split(" | ")[:2] for line in table.splitlines() if line.startswith("| ")][2:]
    assert rows == [["| Latin", "de"], ["| Latin", "en"], ["| **Latin**", "**mean of 2**"],
                    ["| Cyrillic", "ru"], ["| Han", "zh"], ["| **all**", "**mean of 4**"]]
    assert "| **Latin** | **mean of 2** |  |  | **87.5** |" in table  # (100 + 75) / 2
    assert "| Latin | 2 | 87.5 |" in report and "| all | 4 | 86.6 |" in report
    assert "- **ruler**: an EntityRuler" in report
    assert "--models ruler=MODEL --sentences 2" in report and str(ruler_dir) not in report


def test_join_cjk_off_on_han_and_kana_only(matrix, data_dir, transformer_dir, tmp_path):
    assert matrix.join_cjk_components(str(transformer_dir)) == ["transformer"]
    nlp = matrix.load_model(str(transformer_dir), join_cjk=False)
    assert nlp.config["components"]["transformer"]["model"]["join_cjk"] is False
    results = tmp_path / "results"
    args = ["--models", f"tiny={transformer_dir}", "--data-dir", str(data_dir), "--sentences", "2",
            "--langs", "en,zh", "--compare-join-cjk", "--results", str(results)]
    import typer

    app = typer.Typer()
    app.command()(matrix.main)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    records = json.loads((results / "wikiann_matrix.json").read_text(encoding="utf8"))
    assert [(r["model"], r["lang"]) for r in records] == [
        ("tiny", "en"), ("tiny", "zh"), ("tiny (join_cjk off)", "zh")]
    assert records[2]["description"] == "tiny; loaded with join_cjk = false"
    assert (results / "wikiann_matrix.png").stat().st_size > 0
    assert "--compare-join-cjk" in (results / "wikiann_matrix.md").read_text(encoding="utf8")


def test_a_decoding_is_set_on_the_models_and_recorded(matrix, data_dir, ruler_dir, teacher_dir, tmp_path):
    """--decoding sets the concner component's decoding; each record says the decoding it
    was scored with and the report's command repeats it. A pipeline that decodes no tags
    is refused with the model's name."""
    results = tmp_path / "results"
    records = matrix.run_matrix([("teacher", str(teacher_dir))], data_dir, results, sentences=2, langs=["en"],
                                echo=lambda line: None, decoding="greedy")
    assert [(r["model"], r["decoding"]) for r in records] == [("teacher", "greedy")]
    assert "--models teacher=MODEL --sentences 2 --decoding greedy" in matrix.markdown(records)
    default = matrix.run_matrix([("ruler", str(ruler_dir))], data_dir, results, sentences=2, langs=["en"],
                                echo=lambda line: None)
    assert next(r for r in default if r["model"] == "ruler")["decoding"] is None
    with pytest.raises(matrix.MatrixError, match=f"{ruler_dir}: no component"):
        matrix.load_model(str(ruler_dir), decoding="viterbi")
