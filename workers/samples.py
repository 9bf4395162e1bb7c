"""Engine outputs as Arrow rows of the samples contract."""

from typing import Sequence

import pyarrow as pa

SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("sample_idx", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("num_tokens", pa.int32(), nullable=False),
        pa.field("cumulative_logprob", pa.float64()),
        pa.field("finish_reason", pa.string()),
        pa.field("seed", pa.int64(), nullable=False),
    ]
)


def samples_table(problem_ids: Sequence[str], outputs: Sequence, sample_start: int, seeds: Sequence[int]) -> pa.Table:
    """One row per completion; `outputs[i]` is the vLLM RequestOutput for `problem_ids[i]`,
    whose request had seed `seeds[i]` and covered sample indices from `sample_start`."""
    columns: dict[str, list] = {name: [] for name in SAMPLES_SCHEMA.names}
    for problem_id, output, seed in zip(problem_ids, outputs, seeds, strict=True):
        # vLLM returns completions in index order; sort anyway, the index is the contract.
        for completion in sorted(output.outputs, key=lambda c: c.index):
            columns["problem_id"].append(problem_id)
            columns["sample_idx"].append(sample_start + completion.index)
            columns["text"].append(completion.text)
            columns["num_tokens"].append(len(completion.token_ids))
            columns["cumulative_logprob"].append(completion.cumulative_logprob)
            columns["finish_reason"].append(completion.finish_reason)
            columns["seed"].append(seed + completion.index)
    return pa.table(columns, schema=SAMPLES_SCHEMA)
