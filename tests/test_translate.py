"""The translator registry: built-ins, third-party registration, unknown names."""
import catalogue
import pytest

from spacy_concner.translate import Translation, get_translator, translators


def test_builtins_are_registered_with_versions():
    assert {"apertium.v1", "lexicon.v1", "hf_seq2seq.v1", "codeswitch.v1"} <= set(translators.get_all())


def test_third_party_translator_by_name_and_config():
    @translators.register("echo_test.v1")
    def make_echo(lang: str = "xx"):
        class Echo:
            def __call__(self, docs):
                return (Translation(doc, doc) for doc in docs)
        echo = Echo()
        echo.lang = lang
        return echo

    try:
        assert get_translator("echo_test", lang="fr").lang == "fr"
        assert get_translator("echo_test.v1").lang == "xx"
    finally:
        catalogue.REGISTRY.pop(("spacy_concner", "translators", "echo_test.v1"), None)


def test_unknown_translator_lists_the_registered_ones():
    with pytest.raises(ValueError, match="Unknown translator 'nope'.*apertium.v1"):
        get_translator("nope")


@pytest.mark.parametrize("name", ["apertium", "lexicon", "codeswitch"])
def test_pair_based_translators_need_a_pair(name):
    with pytest.raises(ValueError, match=f"The '{name}' translator: missing a required argument: 'pair'"):
        get_translator(name)


def test_a_setting_the_translator_does_not_take_is_named():
    with pytest.raises(ValueError, match="unexpected keyword argument 'model'.*its settings: pair, cache_dir"):
        get_translator("lexicon", pair="eng-deu", model="x")
