"""benchmarks/corpus_reads.py on a tiny DocBin: its fields and table, not its timings."""
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from conftest import benchmark_module


def test_each_file_gets_one_record_with_both_readers(tmp_path, monkeypatch):
    reads = benchmark_module("corpus_reads")
    nlp = spacy.blank("en")
    path = tmp_path / "train.spacy"
    DocBin(docs=[nlp("Anna lives in Berlin ."), nlp("No entity here .")], store_user_data=True).to_disk(path)
    monkeypatch.chdir(tmp_path)
    import typer

    app = typer.Typer()
    app.command()(reads.main)
    results = tmp_path / "results"
    for _ in range(2):  # a rerun replaces the file's record
        result = CliRunner().invoke(app, ["train.spacy", "--reads", "3", "--results", str(results)])
        assert result.exit_code == 0, result.output
    (record,) = reads.read_records(results / "corpus_reads.json", reads.RECORD_KEY)
    assert record["file"] == "train.spacy" and record["sentences"] == 2 and record["reads"] == 3
    assert record["saved_per_later_read_s"] == round(record["corpus_later_s"] - record["read_once_later_s"], 4)
    table = (results / "corpus_reads.md").read_text()
    assert "| train.spacy | 2 |" in table
    assert "python benchmarks/corpus_reads.py train.spacy --reads 3" in table
