"""benchmarks/contrast_headroom.py: TCL, LCL and in-batch retrieval of a model's vectors."""
import json
import math

import spacy
import torch
from transformers import AutoModel

from conftest import benchmark_module, write_keyed_docbin

PEOPLE = ["Anna", "Boris", "Chen", "Dora", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Jana"]
PLACES = ["Berlin", "Cairo", "Delhi", "Lima", "Oslo", "Quito", "Rome", "Seoul", "Tokyo", "Zagreb"]


def test_the_bare_encoder_has_the_encoders_weights_in_the_models_pipeline(teacher_dir, tiny_bert_dir):
    headroom = benchmark_module("contrast_headroom")
    bare = headroom.encoder_pipeline(teacher_dir, tiny_bert_dir).get_pipe("transformer").model.transformer.state_dict()
    trained = spacy.load(teacher_dir).get_pipe("transformer").model.transformer.state_dict()
    encoder = AutoModel.from_pretrained(str(tiny_bert_dir)).state_dict()
    assert all(torch.equal(bare[name], encoder[name]) for name in encoder)
    assert not all(torch.equal(bare[name], trained[name]) for name in encoder)


def test_a_sentence_paired_with_itself_is_always_retrieved(teacher_dir, tiny_bert_dir, tmp_path):
    """Each sentence's "translation" is the sentence itself (distinct sentences): its most
    similar other sentence in the batch is its pair, and TCL is under its uniform value."""
    sentences = [([person, "flew", "to", place], [(0, 1, "PER"), (3, 4, "LOC")])
                 for person in PEOPLE for place in PLACES[:4]]
    source = write_keyed_docbin(tmp_path / "source.spacy", sentences)
    same = write_keyed_docbin(tmp_path / "same.spacy", sentences)
    output = tmp_path / "headroom.json"
    headroom = benchmark_module("contrast_headroom")
    headroom.main(source, same, [f"teacher={teacher_dir}"], encoder=tiny_bert_dir, seed=1, output=output)
    records = json.loads(output.read_text())["records"]
    assert [r["model"] for r in records] == ["encoder", "teacher"]
    for record in records:
        assert record["retrieval"] == 100.0
        assert record["batches"] == 2  # 40 pairs in batches of 32 pairs
        assert record["tcl_uniform"] == round((math.log(63) + math.log(15)) / 2, 3)
        assert 0 < record["tcl"] < record["tcl_uniform"]
        # a batch of n sentences of 4 tokens has 2n O, n B-PER and n B-LOC tokens (n = 64, then 16)
        floor = (math.log(2 * 64 - 1) * 2 + math.log(64 - 1) * 2) / 4, (math.log(2 * 16 - 1) * 2 + math.log(16 - 1) * 2) / 4
        assert record["lcl_floor"] == round(sum(floor) / 2, 3)
        assert record["lcl"] > record["lcl_floor"]
    assert "| teacher |" in output.with_suffix(".md").read_text()
