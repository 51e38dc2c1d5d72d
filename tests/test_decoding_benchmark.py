"""benchmarks/decoding.py: one prediction, both decodings, the same F1 as `evaluate`."""
import json
from pathlib import Path

from spacy.training.initialize import init_nlp

from spacy_concner.evaluate import evaluate_model

from conftest import benchmark_module
from test_pipeline import concner_config


def test_split_entities_counts_multi_token_gold_entities_cut_in_two():
    decoding = benchmark_module("decoding")
    gold = [["B-ORG", "I-ORG", "O", "B-LOC", "I-LOC", "B-PER"]]
    assert decoding.split_entities(gold, [["B-LOC", "B-ORG", "O", "B-LOC", "I-LOC", "B-PER"]]) == 1
    assert decoding.split_entities(gold, [["B-ORG", "I-ORG", "O", "B-LOC", "B-LOC", "O"]]) == 1
    assert decoding.split_entities(gold, [["B-ORG", "O", "O", "O", "B-LOC", "B-PER"]]) == 0


def test_both_decodings_score_as_evaluate_does(tiny_bert_dir, paired_docbins, tmp_path):
    nlp = init_nlp(concner_config(tiny_bert_dir, paired_docbins))
    run = tmp_path / "runs" / "conll2003-en-n1000-s1-r2"
    model = run / "training" / "es" / "concner-n1000-s1" / "model-best"
    model.parent.mkdir(parents=True)
    nlp.to_disk(model)
    test = run / "corpus" / "es" / "test.spacy"
    test.parent.mkdir(parents=True)
    test.write_bytes(Path(paired_docbins["dev"]).read_bytes())
    expected = {d: evaluate_model(str(model), [f"es={test}"], None, "concner", decoding=d)[0]["f1"]
                for d in ("greedy", "viterbi")}
    assert expected["greedy"] != expected["viterbi"]  # the untrained model decodes differently: both are checked
    results = tmp_path / "results"
    results.mkdir()
    record = {"recipe": 2, "system": "concner", "lang": "es", "n_source": 1000, "seed": 1,
              "f1": round(expected["greedy"], 2), "model": "training/es/concner-n1000-s1"}
    (results / "accuracy.json").write_text(json.dumps([record]))
    decoding = benchmark_module("decoding")
    decoding.main(runs=tmp_path / "runs", systems="concner", langs="es", seeds="1", recipe=2,
                  results=results, threads=1)
    (measured,) = json.loads((results / "decoding.json").read_text())
    assert measured["greedy"]["f1"] == round(expected["greedy"], 2) == measured["record_f1"]
    assert measured["viterbi"]["f1"] == round(expected["viterbi"], 2)
    assert "| concner | es | 1 |" in (results / "decoding.md").read_text()
    # a record whose model on disk scores otherwise (retrained since) is not kept
    other = {**record, "system": "en", "f1": record["f1"] + 1}
    (results / "accuracy.json").write_text(json.dumps([record, other]))
    decoding.main(runs=tmp_path / "runs", systems="concner,en", langs="es", seeds="1", recipe=2,
                  results=results, threads=1)
    assert [r["system"] for r in json.loads((results / "decoding.json").read_text())] == ["concner"]
