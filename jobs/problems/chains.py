"""A seeded synthetic set of multi-step arithmetic questions: chains of 3 to 5 additions and
subtractions (``12 + 7 - 5 + 30``), for step-level search with a process reward model.

The gold completion works the chain left to right, one operation and one intermediate result
per step (``12 + 7 = 19``), the steps separated by a blank line, a process reward model's
default step separator::

    Question: What is 12 + 7 - 5 + 30?
    Answer:
    12 + 7 = 19

    19 - 5 = 14

    14 + 30 = 44

so each step can be checked on its own and a mistake in an early step carries into every later
one. Operands are 1 to 99 and every intermediate result stays in 0..99 (an operation that would
leave that range is drawn again), so the texts stay short. The final number of the gold
completion is the answer, as the `numeric` verifier reads it. The same arguments always give
the same questions in the same order, so the demo's training script can hold these exact
questions out.
"""

import random
from typing import Sequence

OPERATORS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b}
MIN_OPERAND, MAX_VALUE = 1, 99  # operands of one or two digits; every intermediate result in 0..MAX_VALUE
STEP_SEPARATOR = "\n\n"


def format_chain_prompt(operands: Sequence[int], ops: Sequence[str]) -> str:
    """The question, ending in a newline so that the completion starts with the first step."""
    _check_chain(operands, ops)
    expression = str(operands[0]) + "".join(f" {op} {b}" for op, b in zip(ops, operands[1:]))
    return f"Question: What is {expression}?\nAnswer:\n"


def chain_values(operands: Sequence[int], ops: Sequence[str]) -> list[int]:
    """The intermediate results, one per operation; the last is the answer."""
    _check_chain(operands, ops)
    values, value = [], operands[0]
    for op, b in zip(ops, operands[1:]):
        value = OPERATORS[op](value, b)
        values.append(value)
    return values


def chain_steps(operands: Sequence[int], ops: Sequence[str]) -> list[str]:
    """The gold completion's steps: `previous result op operand = result`, one per operation."""
    values = chain_values(operands, ops)
    lefts = [operands[0]] + values[:-1]
    return [f"{a} {op} {b} = {value}" for a, op, b, value in zip(lefts, ops, operands[1:], values)]


def chain_completion(operands: Sequence[int], ops: Sequence[str]) -> str:
    """The gold completion: the steps joined by the step separator (a blank line)."""
    return STEP_SEPARATOR.join(chain_steps(operands, ops))


def count_chains(min_ops: int, max_ops: int, stop_at: int | None = None) -> int:
    """How many distinct chains of `min_ops` to `max_ops` operations stay in range; with
    `stop_at`, counting stops at the first length that brings the count to at least that."""
    # ways[v]: the chains of the current length that start from the value v and stay in range.
    ways = [1] * (MAX_VALUE + 1)
    total = 0
    for length in range(1, max_ops + 1):
        ways = [sum(ways[v + b] for b in range(MIN_OPERAND, MAX_VALUE - v + 1))
                + sum(ways[v - b] for b in range(MIN_OPERAND, v + 1)) for v in range(MAX_VALUE + 1)]
        if length >= min_ops:
            total += sum(ways[MIN_OPERAND:])
        if stop_at is not None and total >= stop_at:
            break
    return total


def chain_rows(num_problems: int = 100, seed: int = 0, min_ops: int = 3, max_ops: int = 5) -> list[dict]:
    """`num_problems` distinct chains of `min_ops` to `max_ops` operations (the count drawn
    uniformly), each as {"problem_id", "prompt", "answer"}."""
    for name, value in (("num_problems", num_problems), ("min_ops", min_ops), ("max_ops", max_ops)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name}={value!r}: must be an integer")
    if num_problems < 1 or min_ops < 1 or max_ops < min_ops:
        raise ValueError(f"num_problems={num_problems}, min_ops={min_ops}, max_ops={max_ops}: "
                         f"need num_problems >= 1 and 1 <= min_ops <= max_ops")
    distinct = count_chains(min_ops, max_ops, stop_at=num_problems)
    if num_problems > distinct:
        raise ValueError(f"num_problems={num_problems}: only {distinct} distinct chains of "
                         f"{min_ops} to {max_ops} operations exist")
    rng = random.Random(seed)
    seen: set[tuple] = set()
    rows = []
    while len(rows) < num_problems:
        operands, ops = _draw_chain(rng, rng.randint(min_ops, max_ops))
        if (operands, ops) in seen:
            continue
        seen.add((operands, ops))
        rows.append(
            {
                "problem_id": f"chain-{len(rows):05d}",
                "prompt": format_chain_prompt(operands, ops),
                "answer": str(chain_values(operands, ops)[-1]),
            }
        )
    return rows


def _draw_chain(rng: random.Random, num_ops: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """A first operand, then `num_ops` (operator, operand) pairs, each drawn again until its
    result stays in 0..MAX_VALUE (one always does: `+ 1` below the top, `- 1` above 0)."""
    value = rng.randint(MIN_OPERAND, MAX_VALUE)
    operands, ops = [value], []
    for _ in range(num_ops):
        while True:
            op, b = rng.choice("+-"), rng.randint(MIN_OPERAND, MAX_VALUE)
            if 0 <= OPERATORS[op](value, b) <= MAX_VALUE:
                break
        value = OPERATORS[op](value, b)
        operands.append(b)
        ops.append(op)
    return tuple(operands), tuple(ops)


def _check_chain(operands: Sequence[int], ops: Sequence[str]) -> None:
    if len(operands) != len(ops) + 1 or not ops:
        raise ValueError(f"{len(operands)} operands for {len(ops)} operators: need one more operand than operators")
    unknown = sorted(set(ops) - set(OPERATORS))
    if unknown:
        raise ValueError(f"unknown operators {unknown}: use + and -")
