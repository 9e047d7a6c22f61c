"""The replay reader's pure modules import nothing that does I/O; only log_reader touches files and DuckDB."""
import pyarrow as pa
import pytest
from test_layering import IO, imports

from log_columns import encode_strings


@pytest.mark.parametrize("module", [
    "log_formats",     # decides the plan from a header
    "log_sql",         # builds SQL text
    "log_columns",     # numpy/pyarrow on arrays handed in
    "decline_vocab",   # data only
])
def test_reader_pure_modules_do_no_io(module):
    assert imports(module) & (IO | {"duckdb", "io", "gzip", "csv"}) == set()


def test_encode_strings_example():
    vocab, index, seen = ["mc"], {"mc": 0}, []
    got = encode_strings(pa.array(["visa", "mc", None, "visa"]), vocab, index, on_new=seen.append)
    assert got.tolist() == [1, 0, -1, 1] and vocab == ["mc", "visa"] and seen == ["visa"]
