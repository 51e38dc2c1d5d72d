"""benchmarks/records.py: the results files the benchmarks keep one record per setting in."""
import pytest

from conftest import benchmark_module

KEY = ("pipeline", "threads")


@pytest.fixture(scope="module")
def records():
    return benchmark_module("records")


def test_a_new_record_takes_the_place_of_the_one_with_its_key(records):
    old = [{"pipeline": "a", "threads": 1, "f1": 1}, {"pipeline": "a", "threads": 2, "f1": 2},
           {"pipeline": "b", "threads": 1, "f1": 3}]
    new = {"pipeline": "a", "threads": 2, "f1": 4}
    assert records.replaced(old, new, KEY) == [old[0], new, old[2]]
    other = {"pipeline": "c", "threads": 1, "f1": 5}
    assert records.replaced(old, other, KEY) == old + [other]


def test_records_are_written_with_their_markdown_and_read_back(records, tmp_path):
    path = tmp_path / "results" / "speed.json"
    assert records.read_records(path, KEY) == []
    written = [{"pipeline": "ä", "threads": 1}]
    records.write_records(path, written, "# speed\n")
    assert records.read_records(path, KEY) == written
    assert path.with_suffix(".md").read_text(encoding="utf8") == "# speed\n"


@pytest.mark.parametrize("text,said", [
    ('[{"pipeline": "a", "threads"', "not readable JSON"),
    ('{"pipeline": "a", "threads": 1}', "not a list of records with pipeline, threads"),
    ('[{"pipeline": "a"}]', "not a list of records with pipeline, threads"),
])
def test_a_damaged_results_file_is_named_with_what_to_do(records, tmp_path, text, said):
    path = tmp_path / "speed.json"
    path.write_text(text, encoding="utf8")
    with pytest.raises(records.RecordsError) as error:
        records.read_records(path, KEY)
    assert str(error.value).startswith(f"{path}: {said}")
    assert str(error.value).endswith("move it away to start afresh")
    assert "\n" not in str(error.value)
    assert path.read_text(encoding="utf8") == text  # left as it was
