"""A seeded synthetic set of integer arithmetic questions with their answers.

The same arguments always give the same questions in the same order, so a run of the demo is
reproducible and the demo model's training script can hold these exact questions out.
"""

import random

OPERATORS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def format_prompt(a: int, op: str, b: int) -> str:
    """The question as the demo model was trained to read it."""
    return f"Question: What is {a} {op} {b}?\nAnswer:"


def arithmetic_rows(num_problems: int = 200, seed: int = 0, digits: int = 2, ops: str = "+-") -> list[dict]:
    """`num_problems` distinct questions `a op b` with operands of up to `digits` digits."""
    unknown = sorted(set(ops) - set(OPERATORS))
    if unknown or not ops:
        raise ValueError(f"ops={ops!r}: use a non-empty string of {''.join(OPERATORS)}")
    if digits < 1 or num_problems < 1:
        raise ValueError(f"digits={digits}, num_problems={num_problems}: both must be at least 1")
    operand_count = 10**digits
    distinct = operand_count * operand_count * len(set(ops))
    if num_problems > distinct:
        raise ValueError(f"num_problems={num_problems}: only {distinct} distinct questions exist")
    rng = random.Random(seed)
    seen: set[tuple[int, str, int]] = set()
    rows = []
    while len(rows) < num_problems:
        question = (rng.randrange(operand_count), rng.choice(ops), rng.randrange(operand_count))
        if question in seen:
            continue
        seen.add(question)
        a, op, b = question
        rows.append(
            {
                "problem_id": f"arithmetic-{len(rows):05d}",
                "prompt": format_prompt(a, op, b),
                "answer": str(OPERATORS[op](a, b)),
            }
        )
    return rows
