from spacy_concner.tables import markdown_table


def test_markdown_table_aligns_the_columns_asked_for():
    table = markdown_table(["system", "F1", "n"], [["en", "41.92", 3], ["concner", "45.32", 4]], align="lr")
    assert table == (
        "| system | F1 | n |\n| --- | ---: | --- |\n| en | 41.92 | 3 |\n| concner | 45.32 | 4 |\n"
    )
