"""Atomic writes, DocBin reading with one clear error, chunked jobs."""
import pytest
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from spacy_concner.files import (
    ChunkedJob, DocBinError, OutputPathError, atomic_folder, atomic_path, check_output_file, read_docbin,
    write_atomic, write_docbin,
)


@pytest.mark.parametrize("data", ["Köln\n", b"\x00\xff"], ids=["text", "bytes"])
def test_write_atomic_writes_text_as_utf8_or_bytes_and_makes_folders(tmp_path, data):
    path = tmp_path / "new" / "folder" / "file"
    write_atomic(path, data)
    assert path.read_bytes() == (data.encode("utf8") if isinstance(data, str) else data)
    assert [p.name for p in path.parent.iterdir()] == ["file"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old", encoding="utf8")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            tmp.write_text("half", encoding="utf8")
            raise KeyboardInterrupt
    assert path.read_text(encoding="utf8") == "old"
    assert list(tmp_path.iterdir()) == [path]


def test_atomic_path_replaces_the_file_when_the_block_succeeds(tmp_path):
    path = tmp_path / "cache.pkl"
    path.write_bytes(b"old")
    with atomic_path(path) as tmp:
        assert tmp != path and tmp.parent == path.parent
        tmp.write_bytes(b"new")
        assert path.read_bytes() == b"old"
    assert path.read_bytes() == b"new" and list(tmp_path.iterdir()) == [path]


def test_atomic_folder_replaces_the_folder_only_when_the_block_succeeds(tmp_path):
    folder = tmp_path / "encoder"
    folder.mkdir()
    (folder / "old.json").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(folder) as staging:
            (staging / "new.json").write_text("half")
            raise KeyboardInterrupt
    assert [p.name for p in folder.iterdir()] == ["old.json"]
    with atomic_folder(folder) as staging:
        (staging / "new.json").write_text("new")
    assert [p.name for p in folder.iterdir()] == ["new.json"]
    assert list(tmp_path.iterdir()) == [folder]  # no staging or old folder left


def test_read_docbin_returns_the_docs_with_their_user_data(tmp_path):
    doc = Doc(Vocab(), words=["Anna", "lebt"])
    doc.user_data["key"] = "s:1"
    path = tmp_path / "docs.spacy"
    DocBin(docs=[doc], store_user_data=True).to_disk(path)
    (read,) = read_docbin(path, Vocab())
    assert read.text == "Anna lebt " and read.user_data["key"] == "s:1"


@pytest.mark.parametrize(
    "content,message",
    [(None, "no such file"), (b"Anna lebt in Berlin\n", "cannot be read as a DocBin"), (b"", "cannot be read as a DocBin")],
    ids=["missing", "text", "empty"],
)
def test_read_docbin_names_the_file_and_what_to_do(tmp_path, content, message):
    path = tmp_path / "test.spacy"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DocBinError, match=message) as error:
        read_docbin(path, Vocab())
    assert str(path) in str(error.value)
    if content is not None:
        assert "spacy_concner convert" in str(error.value)


def test_chunked_job_resumes_its_own_chunks_and_discards_another_runs(tmp_path):
    output, vocab = tmp_path / "out.spacy", Vocab()
    job = ChunkedJob(output, {"input": "a", "chunk_size": 2})
    job.start()
    write_docbin([Doc(vocab, words=["one"])], job.path(0))
    assert job.is_done(0) and not job.is_done(1)
    again = ChunkedJob(output, {"chunk_size": 2, "input": "a"})  # same fingerprint
    again.start()
    assert again.is_done(0)
    write_docbin([Doc(vocab, words=["two"])], again.path(1))
    assert [doc.text for doc in again.merge(2, vocab)] == ["one ", "two "]
    assert [doc.text for doc in read_docbin(output, vocab)] == ["one ", "two "]
    assert list(tmp_path.iterdir()) == [output]
    other = ChunkedJob(output, {"input": "b", "chunk_size": 2})
    write_docbin([Doc(vocab, words=["stale"])], other.path(0))
    other.start()
    assert not other.is_done(0) and [p.name for p in other.parts.iterdir()] == ["fingerprint.json"]


def test_resuming_counts_chunks_not_the_fingerprint(tmp_path, capsys):
    """Regression: with done_suffix ".json" the count included fingerprint.json."""
    job = ChunkedJob(tmp_path / "out.spacy", {"input": "a"}, done_suffix=".json")
    job.start()
    write_atomic(job.path(0, ".json"), "{}")
    ChunkedJob(tmp_path / "out.spacy", {"input": "a"}, done_suffix=".json").start()
    assert "Resuming: 1 finished chunks" in capsys.readouterr().out


def test_an_output_path_that_is_a_folder_or_below_a_file_is_refused_before_writing(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="folder is a folder, not a file"):
        write_atomic(tmp_path / "folder", "data")
    with pytest.raises(OutputPathError, match=r"file is a file, not a folder: give another path than .*file/out\.spacy"):
        check_output_file(tmp_path / "file" / "out.spacy")
    check_output_file(tmp_path / "new" / "out.spacy")  # folders still to be made are fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]
