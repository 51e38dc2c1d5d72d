"""Apertium lexicon: the word translations of an Apertium pair, asked of Apertium as Docs come.

Spanish has no usable bilingual dictionary (FreeDict's eng-spa gives "house" -> "iglesia"),
so the code-switched view of an Apertium pair (eng-spa) takes its words from Apertium.
Before a batch of Docs is rewritten, Apertium is asked what the lexicon has not asked yet:
every word and every phrase the lexicon may look up in them (a run of 2 to MAX_PHRASE
words inside one entity or outside entities), each as written and lowercased, each an
input of its own (null-flush mode), so that it is translated out of context like a
dictionary entry.

- A phrase is one only if Apertium's morphological analyser reads it as one lexical
  unit, a multiword of its dictionary (United States, Hong Kong, prime minister,
  according to); other runs are translated word by word.
- Apertium marks what it does not know (*word) or cannot generate (#word, @word): such an
  answer, an empty one and one that repeats its input (a name left alone) leave the word
  unknown, and it is never switched.
- Apertium capitalises each input as the start of a sentence: a translation takes the
  case of its input's first letter.
- Entity words keep the lexicon's exact-case rule: a word or phrase with a capital is
  known only if Apertium translates it otherwise than its lowercased form, unknown words
  of which count as themselves: Turkey -> Turquía (turkey -> pavo), Germany -> Alemania
  (germany -> *germany), New York -> Nueva York (new york -> nuevo *york), but not a name
  read as a word, Bath -> Baño (bath -> baño).

So a Doc is rewritten with the answers to its own questions, which depend on the Doc
alone, and an answer on its question alone: a Doc is switched the same way in any chunk
or order. Words with a quote or an apostrophe are not asked: alone, a clitic loses its
sense ('s -> es) and a contraction a word (don't -> no).
"""
import re
import warnings
from pathlib import Path
from typing import Dict, List, Sequence, Set

from spacy.tokens import Doc
from spacy.util import minibatch

from .apertium import ApertiumFailure, ApertiumProcess, installed_mode
from .lexicon import Lexicon, has_letter, same_owner
from .markers import WordBlankCodec, apertium_escape, entity_of_token

BATCH_SIZE = 256  # questions per write to a pipeline, whose pipes must not fill up
_MARKS = "*#@"
_NOT_ASKED = set(_MARKS + "'\"`‘’“”")  # marks and quotes
_SURFACE = re.compile(r"(?<!\\)\^((?:\\.|[^\\/$])*)")  # the surface form of each lexical unit of an analysis
_ESCAPED = re.compile(r"\\(.)")


class ApertiumLexicon(Lexicon):
    def __init__(self, translator: ApertiumProcess, analyser: ApertiumProcess):
        super().__init__({}, {})
        self.translator = translator
        self.analyser = analyser
        self.units: Dict[str, bool] = {}  # phrase -> whether the analyser reads it as one unit
        self.answers: Dict[str, str] = {}  # question -> Apertium's answer, marks kept ("" if it failed)

    def learn(self, docs: Sequence[Doc]) -> None:
        """Ask Apertium the Docs' questions not asked yet, in fresh pipelines (Apertium
        carries state from input to input), and enter the translations it knows."""
        for process in (self.translator, self.analyser):
            process.stop()
        asked = set().union(*(questions(doc) for doc in docs))
        phrases = sorted({form for q in asked if " " in q for form in (q, q.lower())} - self.units.keys())
        self.units.update((p, one_unit(p, out)) for p, out in zip(phrases, self._ask(self.analyser, phrases)))
        # words and phrases, each with its lowercased form, which the exact-case rule compares it with
        wanted = {q for q in asked if " " not in q or self.units[q] or self.units[q.lower()]}
        new = sorted({form for q in wanted for form in (q, q.lower())} - self.answers.keys())
        self.answers.update((q, plain_text(out)) for q, out in zip(new, self._ask(self.translator, new)))
        for question in new:
            self._enter(question)

    def _ask(self, process: ApertiumProcess, inputs: List[str]) -> List[str]:
        """The process's output streams, "" where it failed (with a warning)."""
        outputs = [out for batch in minibatch(inputs, BATCH_SIZE)
                   for out in process.translate_each([apertium_escape(text) for text in batch])]
        failed = [text for text, out in zip(inputs, outputs) if isinstance(out, ApertiumFailure)]
        if failed:
            warnings.warn(f"Apertium failed on {len(failed)} of {len(inputs)} words and phrases "
                          f"({failed[0]!r}, ...): they stay in English")
        return ["" if isinstance(out, ApertiumFailure) else out for out in outputs]

    def _enter(self, question: str) -> None:
        answer = self.answers[question]
        lowered = question.lower()
        if not knows(question, answer) or (" " in question and not self.units[question]):
            return
        if question == lowered:
            self.lowercase[question] = same_case(answer, question)  # the fallback of words outside entities
        elif answer.lower() == unmarked(self.answers[lowered]).lower():
            return  # read as the lowercase word or phrase: not known with its case
        self.exact[question] = same_case(answer, question)
        if " " in question:
            self.phrase_starts.add(lowered.split(" ", 1)[0])

    def __del__(self):
        for process in (self.translator, self.analyser):
            process.stop()


def questions(doc: Doc) -> Set[str]:
    """What a Doc asks: each run of 1 to MAX_PHRASE words inside one entity or outside
    entities that starts with a word with a letter (the lexicon's possible phrases),
    those with a mark or a quote left out."""
    words = [token.text for token in doc]
    owner = entity_of_token(len(words), [(e.start, e.end, e.label_) for e in doc.ents])
    asked = {" ".join(words[i : i + n]) for i, word in enumerate(words) if has_letter(word)
             for n in range(1, same_owner(owner, i) + 1)}
    return {question for question in asked if not _NOT_ASKED & set(question)}


def one_unit(phrase: str, analysis: str) -> bool:
    """Whether the analysis of a phrase is one lexical unit whose surface is the phrase."""
    surfaces = _SURFACE.findall(analysis)
    return len(surfaces) == 1 and _ESCAPED.sub(r"\1", surfaces[0]) == phrase


def plain_text(output: str) -> str:
    """A translation's output stream as text on one line."""
    return " ".join(WordBlankCodec().decode(output)[0].split())


def knows(question: str, answer: str) -> bool:
    """Whether an answer translates its question: not empty, unmarked, not a repetition."""
    return bool(answer) and answer == unmarked(answer) and answer.lower() != question.lower()


def unmarked(answer: str) -> str:
    return answer.translate({ord(mark): None for mark in _MARKS})


def same_case(answer: str, question: str) -> str:
    """The answer starting in the case of the question (Apertium capitalises every input)."""
    return (answer[0].lower() if question[0].islower() else answer[0]) + answer[1:]


def apertium_lexicon(pair: str, modes_dir: Path, timeout: float) -> ApertiumLexicon:
    """The lexicon of an installed Apertium mode; BackendMissing, as from the apertium
    translator, if it is not installed or does not run."""
    mode_file = installed_mode(pair, modes_dir)
    return ApertiumLexicon(ApertiumProcess(mode_file, timeout, marks=True),
                           ApertiumProcess(mode_file, timeout, analyser_only=True))
