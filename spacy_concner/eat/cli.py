"""The `eat-pipeline` command: an English NER pipeline -> a target-language pipeline with
the `eat` component, saved with the English pipeline inside it."""
from pathlib import Path
from typing import Dict, Optional

import spacy
import typer
from spacy.language import Language
from wasabi import msg

from ..files import OutputPathError, atomic_folder, check_output_folder
from ..loading import PipelineError
from ..translate import BackendMissing
from ..translate.lexicon import DICTD_DIR
from ..translate.text import ISO639_1

BACKENDS = {"apertium": "spacy_concner.eat_apertium.v1", "gloss": "spacy_concner.eat_gloss.v1"}
_ISO639_3 = {short: long for long, short in ISO639_1.items()}


def eat_pipeline_cli(
    english: str = typer.Argument(..., help="English NER pipeline: a folder or an installed package"),
    output: Path = typer.Argument(..., help="Folder of the pipeline to write"),
    lang: str = typer.Option(..., help="Target language (spaCy code): es, de, nl, ar, hi, zh"),
    backend: Optional[str] = typer.Option(None, help="apertium or gloss [default: apertium for es, else gloss]"),
    cache_dir: Optional[Path] = typer.Option(None, help="gloss: parsed dictionaries [default: $SPACY_CONCNER_LEXICONS or assets/lexicons]"),
    dictd_dir: Path = typer.Option(DICTD_DIR, help="gloss: folder of the FreeDict dictionaries"),
) -> None:
    """Build a translate-test pipeline (EAT): target text -> English -> English NER ->
    entities projected back onto the target words."""
    try:
        translator = translator_config(lang, backend or ("apertium" if lang == "es" else "gloss"), cache_dir, dictd_dir)
        build_eat_pipeline(english, output, lang, translator)
    except (BackendMissing, PipelineError, OutputPathError, ValueError) as error:
        msg.fail(str(error), exits=1)
    msg.good(f"{output}: {lang} pipeline with the eat component ({translator['@misc']}, pair {translator['pair']})")


def translator_config(lang: str, backend: str, cache_dir: Optional[Path], dictd_dir: Path) -> Dict:
    """The `translator` block of the component's config for a language and backend."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    config = {"@misc": BACKENDS[backend], "pair": f"{_ISO639_3.get(lang, lang)}-eng"}
    if backend == "gloss":
        config["dictd_dir"] = str(dictd_dir)
        if cache_dir is not None:
            config["cache_dir"] = str(cache_dir)
    return config


def build_eat_pipeline(english: str, output: Path, lang: str, translator: Dict) -> Language:
    """A blank `lang` pipeline with the eat component, written to output whole or not at
    all; the English pipeline is loaded first, so that a bad one is reported before."""
    check_output_folder(output)
    nlp = spacy.blank(lang)
    nlp.add_pipe("eat", config={"english": english, "translator": translator})
    nlp.get_pipe("eat").english  # loaded now, before anything is written
    with atomic_folder(output) as staging:
        nlp.to_disk(staging)
    return nlp
