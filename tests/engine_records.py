"""The record format of tests/helpers/engine_driver.c, and its exactness check."""
import re

_RECORD = re.compile(rb"^T(\d+) (\d+) [a-z]*$")


def check_records(data, threads, records):
    """Every record once, whole, each thread's records in order."""
    lines = data.split(b"\n")
    assert lines[-1] == b"", "output does not end with a whole record"
    next_seq = [0] * threads
    for line in lines[:-1]:
        m = _RECORD.match(line)
        assert m, f"torn or foreign record: {line[:80]!r}"
        t, seq = int(m.group(1)), int(m.group(2))
        assert seq == next_seq[t], f"thread {t}: record {seq} where {next_seq[t]} was due"
        next_seq[t] += 1
    assert next_seq == [records] * threads
