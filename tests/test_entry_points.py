"""setup.py's entry points name the functions that `import spacy_concner` registers, so
that an installed plugin and a copy on the path (not installed) resolve the same."""
import ast
import importlib
from pathlib import Path

import pytest
from spacy.util import registry

import spacy_concner  # noqa: F401  registers everything
from spacy_concner.translate import translators

SETUP = Path(__file__).parents[1] / "setup.py"
REGISTRIES = {
    "spacy_factories": registry.factories,
    "spacy_architectures": registry.architectures,
    "spacy_readers": registry.readers,
    "spacy_batchers": registry.batchers,
    "spacy_loggers": registry.loggers,
    "thinc_schedules": registry.schedules,
    "thinc_losses": registry.losses,
    "thinc_layers": registry.layers,
    "spacy_misc": registry.misc,
    "spacy_concner_translators": translators,
}


def declared_entry_points() -> dict:
    """{group: {name: "module:function"}} from the setup() call in setup.py."""
    call = next(
        node for node in ast.walk(ast.parse(SETUP.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup"
    )
    (groups,) = [ast.literal_eval(k.value) for k in call.keywords if k.arg == "entry_points"]
    return {
        group: dict(tuple(part.strip() for part in entry.split("=")) for entry in entries)
        for group, entries in groups.items()
    }


DECLARED = [(group, name, target) for group, entries in declared_entry_points().items()
            for name, target in entries.items()]


def test_every_group_is_known():
    assert {group for group, _, _ in DECLARED} == set(REGISTRIES)


@pytest.mark.parametrize("group,name,target", DECLARED, ids=[name for _, name, _ in DECLARED])
def test_entry_point_names_the_registered_function(group, name, target):
    module, function = target.split(":")
    assert REGISTRIES[group].get(name) is getattr(importlib.import_module(module), function)
