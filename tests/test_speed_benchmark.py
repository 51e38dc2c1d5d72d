"""benchmarks/speed.py: end to end on two tiny pipelines (its fields, not timings), an
int8 transformer student and a CNN, each in its own process; merging and the table."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example

from spacy_concner.files import read_docbin
from spacy_concner.package import quantized_config

ROOT = Path(__file__).parents[1]


def speed_module():
    spec = importlib.util.spec_from_file_location("speed", ROOT / "benchmarks" / "speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cnn_dir(test_file: Path, folder: Path) -> Path:
    nlp = spacy.blank("xx")
    nlp.add_pipe("ner")
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in read_docbin(test_file, nlp.vocab)]
    nlp.initialize(lambda: examples)
    nlp.to_disk(folder / "cnn")
    return folder / "cnn"


def test_speed_records_pipelines_encoders_and_f1(teacher_dir, paired_docbins, tmp_path):
    int8 = tmp_path / "int8"
    shutil.copytree(teacher_dir, int8)
    (int8 / "config.cfg").write_text(quantized_config((int8 / "config.cfg").read_text(), int8 / "config.cfg"))
    test = paired_docbins["translation"]
    results = tmp_path / "results"
    args = ["--pipelines", f"student={int8},cnn={cnn_dir(test, tmp_path)}", "--test", test,
            "--sentences", 20, "--threads", 1, "--batch-size", 8, "--repeats", 1,
            "--teacher", "student", "--results", results]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, ROOT / "benchmarks" / "speed.py", *map(str, args)],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    records = {r["pipeline"]: r for r in json.loads((results / "speed.json").read_text())}
    student, cnn = records["student"], records["cnn"]
    for record in (student, cnn):
        assert record["threads"] == 1 and record["n_sents"] == 20 and record["n_words"] > 0
        assert record["words_per_second"] > 0 and record["tokenizer_words_per_second"] > 0
        assert 0 <= record["f1"] <= 100
    assert student["pipes"] == ["transformer", "concner"] and student["f1"] > 50
    assert (student["decoding"], cnn["decoding"]) == ("viterbi", None)
    assert (student["encoder_layers"], student["int8"]) == (2, True)
    assert student["encoder_words_per_second"] > 0
    # the ratio is of the unrounded speeds; the record keeps them to 0.1 word/s
    ratio = student["encoder_words_per_second"] / student["words_per_second"]
    assert student["pipeline_to_encoder"] == pytest.approx(ratio, abs=2e-3)
    assert (cnn["encoder_layers"], cnn["int8"], cnn["encoder_words_per_second"]) == (None, None, None)
    report = (results / "speed.md").read_text()
    assert "python benchmarks/speed.py --pipelines student=" in report
    assert "| student | 1 | 8 | 2 layers, int8 | viterbi |" in report and "| student | 100.0 |" in report
    assert "| cnn | 1 | 8 | none | – |" in report
    assert records["cnn"]["teacher"] == "student"


def test_each_row_is_compared_with_the_teacher_of_its_run():
    """Regression: the share of the teacher's F1 used the teacher named in the last run
    for every row, so older rows were compared with another run's teacher."""
    speed = speed_module()
    base = dict(threads=1, batch_size=8, encoder_layers=2, int8=False, words_per_second=1.0,
                encoder_words_per_second=1.0, pipeline_to_encoder=1.0, precision=0.0, recall=0.0,
                tokenizer_words_per_second=1.0, n_sents=1, n_words=1, load_avg_1min=0.0, command="c")
    records = [dict(base, pipeline="teacher", f1=80.0),  # an older run, before the teacher field
               dict(base, pipeline="student", f1=72.0),
               dict(base, pipeline="teacher_bf16", f1=60.0, teacher="teacher_bf16"),
               dict(base, pipeline="student_bf16", f1=57.0, teacher="teacher_bf16")]
    report = speed.markdown(records)
    assert "| 72.00 | teacher | 90.0 |" in report
    assert "| 57.00 | teacher_bf16 | 95.0 |" in report


def test_the_batch_size_is_the_pipelines_own_unless_given(teacher_dir, paired_docbins):
    """An application's nlp.pipe batches nlp.batch_size Docs: so does the benchmark."""
    speed = speed_module()
    test = paired_docbins["translation"]
    record = speed.measure("student", str(teacher_dir), 1, test, 5, None, 1)
    assert record["batch_size"] == spacy.load(teacher_dir).batch_size
    assert speed.measure("student", str(teacher_dir), 1, test, 5, 3, 1)["batch_size"] == 3


def test_pipelines_are_named(tmp_path):
    import pytest
    import typer

    speed = speed_module()
    assert speed.parse_pipelines("a=x,b=pkg_name") == [("a", "x"), ("b", "pkg_name")]
    with pytest.raises(typer.BadParameter, match="NAME=MODEL"):
        speed.parse_pipelines("training/de/concner-n1000-s1/model-best")


def test_a_model_ending_in_int8_is_loaded_with_its_encoder_in_int8(teacher_dir, paired_docbins, tmp_path):
    """MODEL:int8 quantises a trained transformer student at load time, no copy needed;
    a pipeline without that switch is refused before anything is measured."""
    import pytest
    import typer

    from spacy_concner.encoder_forward import bfloat16_supported

    speed = speed_module()
    assert speed.parse_pipelines(f"student={teacher_dir}:int8") == [("student", f"{teacher_dir}:int8")]
    int8, own = speed.load(f"{teacher_dir}:int8"), speed.load(str(teacher_dir))
    words = [token.text for token in next(iter(read_docbin(paired_docbins["translation"], int8.vocab)))]
    for nlp in (int8, own):
        nlp(Doc(nlp.vocab, words=words))  # the encoder is quantised at its first prediction
    assert speed.encoder_description(speed.transformer_model(int8)) == {"encoder_layers": 2, "int8": True, "bfloat16": False}
    # without a suffix, the pipeline's own settings: configs/concner.cfg has bfloat16 = true
    assert speed.encoder_description(speed.transformer_model(own)) == {
        "encoder_layers": 2, "int8": False, "bfloat16": bfloat16_supported()}
    cnn = cnn_dir(paired_docbins["translation"], tmp_path)
    for suffix in (":int8", ":bf16", ":fp32"):
        with pytest.raises(typer.BadParameter, match=f"{suffix[1:]} needs a transformer student"):
            speed.parse_pipelines(f"cnn={cnn}{suffix}")


def test_a_model_ending_in_bf16_or_fp32_runs_its_encoder_so(teacher_dir, paired_docbins):
    """MODEL:bf16 and MODEL:fp32 load a trained transformer with bfloat16 = true or false
    (TransformerModel.v3)."""
    from spacy_concner.encoder_forward import bfloat16_supported

    speed = speed_module()
    bf16 = speed.load(f"{teacher_dir}:bf16")
    words = [token.text for token in next(iter(read_docbin(paired_docbins["translation"], bf16.vocab)))]
    bf16(Doc(bf16.vocab, words=words))
    expected = {"encoder_layers": 2, "int8": False, "bfloat16": bfloat16_supported()}
    assert speed.encoder_description(speed.transformer_model(bf16)) == expected
    assert speed.precision(expected) == ("bf16" if bfloat16_supported() else "fp32")
    fp32 = speed.load(f"{teacher_dir}:fp32")  # its config says bfloat16 = true
    fp32(Doc(fp32.vocab, words=words))
    assert speed.encoder_description(speed.transformer_model(fp32)) == {"encoder_layers": 2, "int8": False, "bfloat16": False}


def test_a_model_ending_in_a_decoding_is_loaded_with_it(teacher_dir):
    """MODEL:greedy and MODEL:int8:greedy set the concner component's decoding; records
    made before the components had a choice show greedy."""
    speed = speed_module()
    assert speed.load(f"{teacher_dir}:greedy").get_pipe("concner").decoding == "greedy"
    assert speed.split_precision(f"{teacher_dir}:int8:greedy") == (str(teacher_dir), speed.PRECISIONS[":int8"])
    assert speed.split_decoding(f"{teacher_dir}:int8:viterbi") == (f"{teacher_dir}:int8", "viterbi")
    assert speed.split_decoding(str(teacher_dir)) == (str(teacher_dir), None)
    assert speed.decoding_of({"pipes": ["transformer", "concner"]}) == "greedy"
    assert speed.decoding_of({"pipes": ["tok2vec", "ner"]}) == "–"
