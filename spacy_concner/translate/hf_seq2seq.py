"""Hugging Face seq2seq backend for users with a local MarianMT/NLLB folder.

Entities are wrapped in inline markers (`<PER> Peter Blackburn </PER>`) and read back from
the output; a sentence whose markers were lost or mangled is reported, not kept.
"""
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, List, Optional

import spacy
from spacy.tokens import Doc
from spacy.util import minibatch

from ..pairs import PAIR_KEY
from . import BackendMissing, Translation, translators
from .markers import InlineCodec, MarkerError
from .text import source_parts, target_doc


class Seq2Seq:
    def __init__(self, model_dir: Path, lang: str, tgt_lang: Optional[str], batch_size: int, max_length: int, num_beams: int):
        try:
            import torch  # noqa: F401
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        except ImportError:
            raise BackendMissing("The hf_seq2seq translator needs PyTorch and transformers: pip install torch transformers") from None
        if not (Path(model_dir) / "config.json").exists():
            raise FileNotFoundError(f"{model_dir} is not a Hugging Face model folder (no config.json)")
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForSeq2SeqLM.from_pretrained(str(model_dir)).eval()
        self.generate_options = {"max_length": max_length, "num_beams": num_beams}
        if tgt_lang:  # NLLB/M2M: the target language is forced as the first generated token
            self.generate_options["forced_bos_token_id"] = language_token_id(self.tokenizer, tgt_lang, model_dir)
        self.lang = lang
        self.nlp = spacy.blank(lang)
        self.codec = InlineCodec()
        self.batch_size = batch_size

    def __call__(self, docs: Iterable[Doc]) -> Iterator[Translation]:
        for batch in minibatch(docs, self.batch_size):
            outputs = self.generate([self.codec.encode(*source_parts(doc)) for doc in batch])
            for doc, output in zip(batch, outputs):
                yield self.project(doc, output)

    def generate(self, texts: List[str]) -> List[str]:
        import torch

        inputs = self.tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True,
            max_length=self.generate_options["max_length"], return_token_type_ids=False,
        )
        with torch.no_grad():
            ids = self.model.generate(**inputs, **self.generate_options)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def project(self, source: Doc, output: str) -> Translation:
        """The target Doc from a marked output, or a failure if its markers do not decode to
        the source's entities (same number, same labels in some order)."""
        labels = [ent.label_ for ent in source.ents]
        try:
            text, spans = self.codec.decode(output, set(labels))
        except MarkerError as error:
            return Translation(source, None, str(error))
        if Counter(label for _, _, label in spans) != Counter(labels):
            return Translation(source, None, "markers lost")
        doc = target_doc(self.nlp, text, spans, source.user_data.get(PAIR_KEY))
        if len(doc.ents) != len(labels):
            return Translation(source, None, "markers lost")
        return Translation(source, doc)


def language_token_id(tokenizer, tgt_lang: str, model_dir: Path) -> int:
    """The id of an NLLB/M2M target-language token, e.g. "deu_Latn"; ValueError naming some
    valid ones when the tokenizer does not know it (it would become the unknown token)."""
    token_id = tokenizer.convert_tokens_to_ids(tgt_lang)
    if token_id is not None and token_id != tokenizer.unk_token_id:
        return token_id
    valid = tokenizer.additional_special_tokens
    hint = f"valid ones include {', '.join(valid[:8])}" if valid else "it has no language tokens (tgt_lang is for NLLB/M2M models)"
    raise ValueError(f"tgt_lang {tgt_lang!r} is not a language token of the tokenizer in {model_dir}: {hint}")


@translators.register("hf_seq2seq.v1")
def make_hf_seq2seq(
    model: str, lang: str, tgt_lang: Optional[str] = None, batch_size: int = 8, max_length: int = 256, num_beams: int = 1
) -> Seq2Seq:
    """A local seq2seq model folder translating English into `lang` (spaCy code);
    tgt_lang is NLLB's target token (e.g. "deu_Latn")."""
    return Seq2Seq(Path(model), lang, tgt_lang, batch_size, max_length, num_beams)
