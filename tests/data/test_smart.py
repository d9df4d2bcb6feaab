"""The SMART reader (CISI, Cranfield, MEDLINE, CACM): documents, queries and relevance as BEIR data,
read through the same `read_beir` every retrieval command uses; bad files named by line."""

import pytest

from unirank.data.tables import TableError
from unirank.domains.retrieval.readers import read_beir

DOCUMENTS = """.I 1
.T
Dewey decimal classification
.A
Comaromi, J.P.
.W
   The present study is a history of the DEWEY Decimal
Classification.
.X
1 5 1
.I 2
.W
Automatic indexing of titles.
"""
QUERIES = """.I 1
.W
What problems are there in making up descriptive titles?
.I 2
.T
Indexing
.W
How are titles indexed?
"""


def collection(folder, documents=DOCUMENTS, queries=QUERIES, relevance="1 2 0 0.0\n2 1\n2 2 0 0.0\n"):
    folder.mkdir(exist_ok=True)
    (folder / "TINY.ALL").write_text(documents)
    (folder / "TINY.QRY").write_text(queries)
    (folder / "TINY.REL").write_text(relevance)
    return folder


def test_a_smart_folder_reads_as_beir_data(tmp_path):
    data = read_beir(collection(tmp_path / "tiny"), "test")
    assert data.corpus == {
        "1": "Dewey decimal classification. The present study is a history of the DEWEY Decimal Classification.",
        "2": "Automatic indexing of titles.",
    }
    assert data.queries["2"] == "Indexing. How are titles indexed?"
    assert data.qrels == {"1": {"2": 1}, "2": {"1": 1, "2": 1}}


@pytest.mark.parametrize(
    "files, message",
    [
        ({"documents": "Dewey decimal\n" + DOCUMENTS}, r"TINY.ALL, line 1: text before the first '.I'"),
        ({"documents": DOCUMENTS + ".I 2\n.W\nagain\n"}, r"TINY.ALL, line 14: duplicate id '2'"),
        ({"relevance": "1 2\n1 9 0 0.0\n"}, r"TINY.REL, line 2: unknown document id '9'"),
        ({"relevance": "7 1\n"}, r"TINY.REL, line 1: unknown query id '7'"),
        ({"relevance": "1\n"}, r"TINY.REL, line 1: expected 'query-id doc-id'"),
    ],
)
def test_bad_smart_files_are_named_by_line(tmp_path, files, message):
    with pytest.raises(TableError, match=message):
        read_beir(collection(tmp_path / "bad", **files), "test")


def test_a_smart_collection_has_one_split(tmp_path):
    with pytest.raises(TableError, match="read as split 'test'"):
        read_beir(collection(tmp_path / "tiny"), "train")


def test_cisi_from_the_shared_data(shared_data):
    data = read_beir(shared_data / "cisi", "test")
    assert (len(data.corpus), len(data.queries), len(data.qrels)) == (1460, 112, 76)
    assert sum(len(docs) for docs in data.qrels.values()) == 3114
