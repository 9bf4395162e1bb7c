"""The verified samples of a run, read for metrics in batches of whole problems.

A batch joins each verdict file to its sample file on (problem_id, sample_idx) and holds only
the columns metrics need, so memory is bounded by the batch (about `BATCH_ROWS` rows), not by
the pool. Batches follow the unit ids' problem ranges (`p<start>-<end>-s...`): every sample of a
problem lands in the same batch, whatever its sample ranges. A pool whose unit ids do not name
problem ranges (made elsewhere) is read as one batch.
"""

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.errors import ConfigError, StoreError
from jobs.store import layout
from jobs.store.root import RunStore

BATCH_ROWS = 1_000_000
UNIT_ID = re.compile(r"^p(\d+)-(\d+)-s(\d+)-(\d+)$")
KEYS = ["problem_id", "sample_idx"]


@dataclass
class Pool:
    """One row per verified sample of a batch; problems numbered 0..P-1 in problem_id order."""

    problem_ids: list[str]
    problem: np.ndarray  # each row's problem number
    passed: np.ndarray
    answer: np.ndarray | None  # integer answer ids, -1: no answer; None: the verdicts have no answer column
    tokens: np.ndarray
    score: np.ndarray  # NaN where unknown (ranks last, weighs 0)
    reward: np.ndarray | None = None  # a reward model's score (scores/<key>/), NaN where null; None: no scores read
    log_prob: np.ndarray | None = None  # mean token log-probability, where `score` is another column


def unit_batches(units: list[str], max_rows: int = BATCH_ROWS) -> list[list[str]]:
    """Units grouped so that each problem's units share a batch: overlapping problem ranges
    merged, then consecutive ranges packed up to `max_rows` samples."""
    parsed = [UNIT_ID.match(u) for u in units]
    if not all(parsed):
        return [sorted(units)] if units else []
    spans = sorted((int(m[1]), int(m[2]), (int(m[2]) - int(m[1])) * (int(m[4]) - int(m[3])), u) for m, u in zip(parsed, units))
    batches, current, rows, reach = [], [], 0, -1
    for start, end, size, unit in spans:
        if current and start >= reach and rows >= max_rows:  # a problem boundary: may cut here
            batches.append(current)
            current, rows = [], 0
        current.append(unit)
        rows += size
        reach = max(reach, end)
    return batches + [current] if current else batches


class VerifiedReader:
    """Reads a root's verdicts by one verifier joined to their samples, batch by batch."""

    def __init__(self, store: RunStore, verifier_key: str, score: str | None, batch_rows: int = BATCH_ROWS,
                 scorer_key: str | None = None):
        self.store, self.score, self.batch_rows = store, score, batch_rows
        self.folder = layout.verdicts(verifier_key)
        # With a scorer key, each unit's scores are read beside it (`reward`, and `metrics.score=reward`).
        self.scores = layout.scores(scorer_key) if scorer_key is not None else None
        self.units = sorted(store.unit_ids(self.folder))
        if not self.units:
            raise StoreError(f"{store.root} has no {self.folder}/unit-*.parquet: run troop verify first")
        missing = set(self.units) - store.unit_ids(layout.SAMPLES)
        if missing:
            raise StoreError(f"{store.root}: verdict units without samples ({sorted(missing)[0]}, ...): the root is not one run's")
        if self.scores is not None:
            unscored = set(self.units) - store.unit_ids(self.scores)
            if unscored:
                raise StoreError(f"{store.root}: {len(unscored)} verified unit(s) have no {self.scores}/unit-*.parquet "
                                 f"({sorted(unscored)[0]}, ...): run troop score {store.root} to score them")
        names = self._schema(self.folder).names
        self.verdict_columns = KEYS + ["passed"] + [c for c in ("answer",) if c in names]
        self.sample_columns = KEYS + ["num_tokens", "cumulative_logprob"]
        self.score_columns = KEYS + ["reward"]
        # metrics.score=reward reads the scores where there are some; a pool made elsewhere may
        # carry its own numeric column of that name in its samples or verdicts.
        if score is not None and not (score == "reward" and self.scores is not None):
            (self.sample_columns if self._score_folder(score) == layout.SAMPLES else self.verdict_columns).append(score)

    def _schema(self, folder: str) -> pa.Schema:
        with self.store.fs.open(self.store.unit_file(folder, self.units[0]), "rb") as f:
            return pq.read_schema(f)

    @cached_property
    def reward_is_logit(self) -> bool:
        """Whether the scores' `reward` is a raw logit (an outcome model with one output) rather
        than a probability: the scores files say so in their metadata (`troop.reward`); a file
        made elsewhere without it counts as probabilities when every reward lies in [0, 1]."""
        path = self.store.unit_file(self.scores, self.units[0])
        with self.store.fs.open(path, "rb") as f:
            metadata = pq.read_schema(f).metadata or {}
        if b"troop.reward" in metadata:
            return metadata[b"troop.reward"] == b"logit"
        rewards = pa.concat_arrays([self._read(self.scores, u, ["reward"])["reward"].combine_chunks() for u in self.units])
        low, high = pc.min(rewards).as_py(), pc.max(rewards).as_py()
        return low is not None and not (0.0 <= low and high <= 1.0)

    def _score_folder(self, score: str) -> str:
        """The folder whose files hold the numeric column `score`."""
        numeric = {}
        for folder in (layout.SAMPLES, self.folder):
            for f in self._schema(folder):
                if pa.types.is_integer(f.type) or pa.types.is_floating(f.type):
                    numeric.setdefault(f.name, folder)
        if score not in numeric:
            hint = f"; a reward model's scores come from troop score {self.store.root} score.model=PATH" if score == "reward" else ""
            raise ConfigError(
                f"metrics.score={score}: {self.store.root} has no numeric column '{score}' in its samples or verdicts "
                f"(numeric columns: {', '.join(sorted(numeric)) or 'none'}){hint}"
            )
        return numeric[score]

    def problem_sizes(self) -> tuple[list[str], np.ndarray]:
        """Every problem id (sorted) and its number of verified samples: one light pass."""
        parts = [
            self._read(self.folder, u, ["problem_id"]).group_by("problem_id").aggregate([("problem_id", "count")])
            for u in self.units
        ]
        sizes = pa.concat_tables(parts).group_by("problem_id").aggregate([("problem_id_count", "sum")])
        sizes = sizes.sort_by("problem_id")
        return sizes["problem_id"].to_pylist(), sizes["problem_id_count_sum"].to_numpy().astype(np.int64)

    def batches(self, max_rows: int | None = None):
        """Pools of whole problems, in unit order."""
        for units in unit_batches(self.units, max_rows or self.batch_rows):
            yield self._pool(pa.concat_tables(self._joined(u) for u in units))

    def _read(self, folder: str, unit: str, columns: list[str]) -> pa.Table:
        return self.store.read_table(self.store.unit_file(folder, unit), list(dict.fromkeys(columns)))

    def _joined(self, unit: str) -> pa.Table:
        """A unit's verdicts beside its samples: troop writes both in the same row order, so the
        join is a check of the keys; other writers get a real join, sorted for determinism."""
        verdicts = self._read(self.folder, unit, self.verdict_columns)
        samples = self._read(layout.SAMPLES, unit, self.sample_columns)
        extra = [c for c in samples.column_names if c not in verdicts.column_names]
        if verdicts.select(KEYS).equals(samples.select(KEYS)):
            for name in extra:
                verdicts = verdicts.append_column(name, samples[name])
            return self._with_scores(verdicts, unit)
        joined = verdicts.join(samples.select(KEYS + extra), KEYS).sort_by([(k, "ascending") for k in KEYS])
        return self._with_scores(joined, unit)

    def _with_scores(self, table: pa.Table, unit: str) -> pa.Table:
        """The unit's rewards beside its rows, by the same key check or join as the samples."""
        if self.scores is None:
            return table
        scores = self._read(self.scores, unit, self.score_columns)
        if table.select(KEYS).equals(scores.select(KEYS)):
            return table.append_column("reward", scores["reward"])
        return table.join(scores, KEYS).sort_by([(k, "ascending") for k in KEYS])

    def _pool(self, table: pa.Table) -> Pool:
        problem_ids, problem = _problem_numbers(table["problem_id"])
        tokens = pc.fill_null(table["num_tokens"], 0).to_numpy().astype(np.int64)
        reward = _floats(table["reward"]) if "reward" in table.column_names else None
        return Pool(
            problem_ids=problem_ids,
            problem=problem,
            passed=pc.fill_null(table["passed"], False).to_numpy(zero_copy_only=False).astype(bool),
            answer=_answer_ids(table["answer"]) if "answer" in table.column_names else None,
            tokens=tokens,
            score=reward if self.score == "reward" and reward is not None else _scores(table, self.score, tokens),
            reward=reward,
            log_prob=_scores(table, None, tokens) if self.score is not None else None,
        )


def _problem_numbers(ids: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """Sorted distinct problem ids and each row's index among them (hashing, not a string sort
    of every row)."""
    encoded = pc.dictionary_encode(ids.combine_chunks())
    names = encoded.dictionary.to_pylist()
    order = np.argsort(np.array(names, dtype=object))
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    return [names[i] for i in order], rank[encoded.indices.to_numpy()]


def _answer_ids(answers: pa.ChunkedArray) -> np.ndarray:
    encoded = pc.dictionary_encode(answers.combine_chunks())
    return pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric column as float64, NaN where null."""
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def _scores(table: pa.Table, score: str | None, tokens: np.ndarray) -> np.ndarray:
    if score is not None:
        return _floats(table[score])
    logprob = _floats(table["cumulative_logprob"])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tokens > 0, logprob / np.maximum(tokens, 1), np.nan)
