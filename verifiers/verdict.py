"""The verdict row every verifier returns, and the Arrow schema of verdict files."""

from dataclasses import dataclass
from typing import Optional

import pyarrow as pa

VERDICTS_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("sample_idx", pa.int32(), nullable=False),
        pa.field("passed", pa.bool_(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # pass | fail | no_answer | error | ...
        pa.field("answer", pa.string()),  # canonical extracted answer, for majority vote
        pa.field("detail", pa.string()),
    ]
)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    status: str
    answer: Optional[str]
    detail: str = ""
