"""`math`: LaTeX, boxed and plain answers compared for equivalence with `math-verify`.

math-verify's own timeouts use SIGALRM, which only works on a process's main thread (a Ray
actor's methods need not run there), so they are off and checks run in a helper process
instead: when a check overruns `timeout_s` (sympy can take minutes on hostile input) the
helper is killed and replaced, and the sample gets `timeout`. The helper dies with the pool
worker, even a SIGKILLed one (its parent-death signal, `verifiers.sandbox.die_with_parent`).

At pool scale most samples of a problem end in an answer already checked, after chains of
thought that all differ. So the helper (`Judge`) parses each gold answer once, finds each
completion's final answer where math-verify would (`FinalAnswerSearch`: its own search, run
only over the end of the text that can hold it), parses each distinct answer once, and keeps
the verdict of each (gold, parsed answer) pair: samples ending in the same answer cost one
sympy comparison, and spellings of one value (`(3, 17)`, `(3,17)`) share it. Its LaTeX parses
reuse the parse tree of every earlier answer of the same tokens (`verifiers.latex_parse`).
The worker sends many checks per round trip (`MathChecker.check_many`); the helper sends
verdicts back in runs, and announces each step that is not a cache hit, so an overrun is still
one sample's `timeout`, and a parsed answer that overran once is not compared again on this
worker. Verdicts equal `math_verdict`'s, math-verify called on each sample alone (the tests
compare them row by row).
"""

import hashlib
import importlib.metadata
import logging
import os
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby, product
from typing import Callable, Optional

from verifiers import constant_eq, latex_parse
from verifiers.extract import final_span
from verifiers.helper import start_helper
from verifiers.numeric import canonical_number
from verifiers.sandbox import die_with_parent, in_lasting_thread
from verifiers.verdict import Verdict

MATH_TARGETS = ("latex", "expr", "string")  # math-verify's LatexExtractionConfig, ExprExtractionConfig, StringExtractionConfig
CHUNK = 512  # checks per round trip: fewer messages, bounded message size (a chunk of long texts is a few MB)
FLUSH_S = 0.2  # the helper sends its verdicts at least this often (the worker's deadlines follow them)
CACHE_ENTRIES = 200_000  # a cache this full is emptied: memory stays bounded over many runs on one worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MathOptions:
    """What the verdicts depend on besides the texts (`verify.math.*`, `verify.extract`)."""

    precision: int = 6  # math-verify's float_rounding: decimal places floats are rounded to before comparing
    strict: bool = True  # math-verify's strict: variables matter, a set is not a tuple
    targets: tuple[str, ...] = ("latex", "expr")  # what math-verify extracts (its defaults); "string": A, B, C, D
    extract: Optional[str] = None  # verifiers.extract; None: math-verify searches the whole text


def extraction_config(targets: tuple[str, ...]) -> list:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig

    kinds = {"latex": LatexExtractionConfig, "expr": ExprExtractionConfig, "string": StringExtractionConfig}
    return [kinds[target]() for target in targets]


def parse_gold(answer: str, targets: tuple[str, ...] = MathOptions.targets) -> list:
    """The gold answer parsed. Bare LaTeX, as MATH stores it (`\\frac12`, `2\\pi`), is read
    as one math expression first: plain-text parsing would take `2\\pi` for the number 2."""
    from math_verify import parse

    config = extraction_config(targets)
    if "$" not in answer and "\\boxed" not in answer:
        parsed = parse(f"${answer}$", config, parsing_timeout=None)
        if parsed:
            return parsed
    return parse(answer, config, parsing_timeout=None)


def extracted_answer(text: str, how: str) -> Optional[str]:
    """The answer text extraction `how` finds (a number without its thousands separators:
    `$1,000$` would read as a set)."""
    span = final_span(text, how)
    return canonical_number(span) if how == "last_number" and span is not None else span


def math_verdict(text: str, answer: str, options: MathOptions = MathOptions()) -> tuple[bool, str, Optional[str], str]:
    """(passed, status, canonical answer, detail) of one sample, math-verify called directly:
    the reference the cached path (`Judge`) must agree with."""
    from math_verify import parse, verify

    # It warns once per process that its own (SIGALRM) timeouts are off: they are, on purpose.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    gold = parse_gold(str(answer), options.targets)
    if not gold:
        return False, "error", None, f"gold answer {str(answer)[:80]!r} does not parse"
    if options.extract is None:
        predicted = parse(text, extraction_config(options.targets), parsing_timeout=None)
    else:
        span = extracted_answer(text, options.extract)
        predicted = parse_gold(span, options.targets) if span else []
    if not predicted:
        return False, "no_answer", None, "no mathematical answer found"
    # The sympy form groups equivalent spellings ('\\frac12' and '\\frac{1}{2}') for voting.
    canonical = str(predicted[0])
    passed = bool(verify(gold, predicted, float_rounding=options.precision, strict=options.strict, timeout_seconds=None))
    return passed, "pass" if passed else "fail", canonical, "" if passed else f"expected {gold[-1]}"


def value_key(value) -> Optional[tuple]:
    """A parsed value as a key: its class and structure (sympy's srepr: classes, arguments,
    assumptions, float precision), so equal keys compare alike; None if it has none."""
    if isinstance(value, str):
        return ("str", value)
    from sympy import srepr

    try:
        return (type(value).__name__, srepr(value))
    except Exception:  # noqa: BLE001 - an unprintable value is simply not cached
        return None


def prediction_key(predicted: list) -> Optional[tuple]:
    keys = tuple(value_key(value) for value in predicted)
    return None if None in keys else keys


def _remember(cache: dict, key, value):
    if len(cache) >= CACHE_ENTRIES:
        cache.clear()
    cache[key] = value
    return value


_FINAL_ANSWER = re.compile(r"(?i:final answer)")  # as math-verify's own patterns spell it


def _final_answer(text: str) -> int:
    """Where "final answer" first occurs in any case, as math-verify's patterns match it, or -1."""
    if text.isascii():  # then case folding is ASCII's, and lower() a tenth of the regex's time
        return text.lower().find("final answer")
    found = _FINAL_ANSWER.search(text)
    return found.start() if found else -1
# The math-verify boxed patterns `FinalAnswerSearch.window` was worked out for (sha256 of the
# regex source, math-verify 0.9): another version's are searched in the whole text instead.
_BOXED_PATTERNS = {"9a5a5d83c484d9c4", "1be1870a66335488"}


class FinalAnswerSearch:
    """math-verify's `parse` of a whole text (`math_verify.parser.extract_target_from_pred`,
    first_match fallback, any_match extraction), restricted to its priority groups 0 and 50
    and to the end of the text that can match them; each match extracted once per run.

    Those groups hold two kinds of pattern: ones that start at "final answer" (any case), and
    the boxed ones: `\\boxed{...}` to the text's last brace, and math environments (`$...$`,
    `$$...$$`, `\\(...\\)`, `\\[...\\]`, ` [...] `) that contain a `\\boxed{`. A pattern scanned
    from position w finds the same matches as from 0 if none can start before w. None can
    start before the first "final answer" or `\\boxed{`, except an environment that opens
    earlier and reaches that boxed: the inline ones never cross a line, so w is a line's start,
    moved back while a `$$` or `\\[` opened before it is not closed before the boxed. When
    the groups find no answer, math-verify goes on to lower priorities over the whole text:
    `find` returns None and the caller runs `find_all`, the same search over every priority
    and the whole text (2% of a pool's texts, cut off before their answer, end up there).
    """

    def __init__(self, config: list):
        from math_verify.parser import extract_match, get_extraction_regexes

        self._extract_match = extract_match
        patterns = sorted(((pattern, index, target, priority)
                           for index, (target_patterns, target) in enumerate(get_extraction_regexes(config))
                           for pattern, priority in target_patterns), key=lambda p: p[3])
        self.all_groups = [[p[:3] for p in group] for _, group in groupby(patterns, key=lambda p: p[3])]
        self.groups = [[p[:3] for p in group] for priority, group in groupby(patterns, key=lambda p: p[3]) if priority <= 50]
        self.enabled = importlib.metadata.version("math-verify").startswith("0.9.") and all(
            pattern.pattern.startswith("(?i:final answer")
            or hashlib.sha256(pattern.pattern.encode()).hexdigest()[:16] in _BOXED_PATTERNS
            for group in self.groups for pattern, _, _ in group
        )
        if not self.enabled:
            log.warning("math-verify %s is not the version Troop's final-answer search was written for: "
                        "every completion is searched in full", importlib.metadata.version("math-verify"))
        self._extracted: dict = {}

    @staticmethod
    def window(text: str) -> Optional[int]:
        """Where the search starts, or None if nothing in groups 0 and 50 can match."""
        final = _final_answer(text)
        boxed = text.find("\\boxed{")
        anchors = [a for a in (final, boxed) if a >= 0]
        if not anchors:
            return None
        start = min(anchors)
        if boxed < 0:
            return start  # only the final-answer patterns can match, and only from there
        # A display environment holding a boxed closes after it; its content holds no `$$`
        # (resp. no `\]`): one between an opener and the boxed rules that opener out.
        dollars_close = text.find("$$", boxed) >= 0
        brackets_close = text.find("\\]", boxed) >= 0
        while True:
            line = text.rfind("\n", 0, start)
            if line < 0:
                return 0
            dollars = text.rfind("$$", 0, line) if dollars_close else -1
            if dollars >= 0 and text.find("$$", dollars + 2, boxed) < 0:
                start = dollars
                continue
            bracket = text.rfind("\\[", 0, line) if brackets_close else -1
            if bracket >= 0 and text.find("\\]", bracket + 2, boxed) < 0:
                start = bracket
                continue
            return line

    def find(self, text: str, slow: Callable[[], None] = lambda: None) -> Optional[tuple[list, Optional[tuple]]]:
        """(what `parse(text)` returns, its prediction key), or None where groups 0 and 50 decide
        nothing. `slow()` is called before a match is extracted for the first time."""
        start = self.window(text) if self.enabled else None
        if start is None:
            return None
        return self._search(text, self.groups, start, slow, whole=False)

    def find_all(self, text: str, slow: Callable[[], None] = lambda: None) -> Optional[tuple[list, Optional[tuple]]]:
        """What `parse(text)` returns and its prediction key, every priority searched over the
        whole text (where `find` decides nothing), each match extracted once per run as in
        `find` (a fresh `parse` extracts again what other texts matched alike). On texts cut
        off before their answer, whose last formula is mostly new and parsed once either way,
        10-30% less than `parse` (the bench pool's 648 such texts: 3.5-3.8 s against 4.2-5.0 s),
        groups 0 and 50 skipped where they cannot match. None if disabled."""
        if not self.enabled:
            return None
        # Without an anchor (`window`), nothing in groups 0 and 50 matches: no answer, no fallback.
        groups = self.all_groups[len(self.groups):] if self.window(text) is None else self.all_groups
        try:
            return self._search(text, groups, 0, slow, whole=True)
        except Exception:  # noqa: BLE001 - as `parse`, which returns no answer when extraction raises
            return [], ()

    def _search(self, text: str, groups: list, start: int, slow: Callable[[], None], whole: bool):
        """math-verify's `extract_target_from_pred` over `groups` from `start`."""
        fallbacks = []
        for group in groups:
            matches = [(m, m.start(), m.end(), index, target) for pattern, index, target in group
                       for m in pattern.finditer(text, start)]
            for match, _, _, index, target in sorted(matches, key=lambda m: (m[2], -m[1]), reverse=True):
                value, fallback, key = self._extract(match, index, target, slow)
                if fallback:
                    fallbacks.append(fallback)
                if value is not None:
                    first = fallbacks[:1]
                    keys = (key, *(("str", f) for f in first))
                    return [value, *first], None if key is None else keys
        if not whole:
            return None
        return fallbacks[:1], tuple(("str", f) for f in fallbacks[:1])

    def _extract(self, match: re.Match, index: int, target, slow: Callable[[], None]) -> tuple:
        # math-verify's extraction reads only the match's groups: equal groups, equal result.
        memo = (index, tuple(item for item in match.groupdict().items() if item[1] is not None))
        found = self._extracted.get(memo)
        if found is None:
            slow()
            value, fallback = self._extract_match(match, target)
            found = _remember(self._extracted, memo, (value, fallback, None if value is None else value_key(value)))
        return found


def _widen_parse_caches() -> None:
    """math-verify memoizes its LaTeX and expression parses (pure functions of the string) in
    caches of 20 entries; a pool's answers are many more, and an ANTLR parse of one costs
    5-150 ms. Same functions, caches as large as the helper's own."""
    from math_verify import parser

    for name in ("parse_latex_cached", "parse_expr_cached"):
        cached = getattr(parser, name)
        if getattr(cached, "cache_info", None) and cached.cache_info().maxsize < CACHE_ENTRIES:
            setattr(parser, name, lru_cache(maxsize=CACHE_ENTRIES)(cached.__wrapped__))


class Judge:
    """The helper's side: golds parsed once, final answers found and parsed once, one
    verify per (gold, parsed answer) in the helper's life."""

    def __init__(self, options: MathOptions):
        from math_verify import parse, verify

        logging.getLogger("math_verify").setLevel(logging.ERROR)
        _widen_parse_caches()
        self.options = options
        self._parse, self._verify = parse, verify
        self._config = extraction_config(options.targets)
        self.search = FinalAnswerSearch(self._config) if options.extract is None else None
        self._golds: dict = {}  # gold answer -> (parsed, the key of each value)
        self._answers: dict = {}  # extracted answer text -> (parsed, key), with verify.extract
        self._verdicts: dict = {}  # (gold, prediction key) -> verdict
        self._pairs: dict = {}  # (gold value's key, predicted value's key) -> whether that pair matches

    def verdict(self, text: str, answer: str, skip: frozenset = frozenset(),
                slow: Callable[[Optional[tuple]], None] = lambda key=None: None) -> Optional[tuple]:
        """`math_verdict(text, answer)`; None if the comparison's key is in `skip` (it overran
        before). `slow(key)` is called before work that is not cached (a parse, a comparison:
        `key` names the comparison)."""
        if answer not in self._golds:
            slow(None)
            parsed = parse_gold(answer, self.options.targets)
            _remember(self._golds, answer, (parsed, [value_key(value) for value in parsed]))
        gold, gold_keys = self._golds[answer]
        if not gold:
            return False, "error", None, f"gold answer {answer[:80]!r} does not parse"
        predicted, key = self._prediction(text, slow)
        if not predicted:
            return False, "no_answer", None, "no mathematical answer found"
        key = None if key is None else (answer, key)
        if key in self._verdicts:
            return self._verdicts[key]
        if key in skip:
            return None
        slow(key)
        passed = self._matches(gold, gold_keys, predicted, key[1] if key is not None else None)
        verdict = (passed, "pass" if passed else "fail", str(predicted[0]), "" if passed else f"expected {gold[-1]}")
        return verdict if key is None else _remember(self._verdicts, key, verdict)

    def _matches(self, gold: list, gold_keys: list, predicted: list, predicted_keys: Optional[tuple]) -> bool:
        """math-verify's `verify(gold, predicted)`: whether any (gold value, predicted value) pair
        matches, each pair compared alone, as verify compares them. A pair of values seen before
        (another spelling of an answer often parses to the same value: `2\\sqrt{3}` and
        `2 \\sqrt 3`, `(3, 17)` and `(3,17)`) is not compared again."""
        predicted_keys = predicted_keys or [None] * len(predicted)
        for (g, g_key), (p, p_key) in product(zip(gold, gold_keys), zip(predicted, predicted_keys)):
            pair = (g_key, p_key) if g_key is not None and p_key is not None else None
            matched = self._pairs.get(pair) if pair is not None else None
            if matched is None:
                matched = bool(self._verify([g], [p], float_rounding=self.options.precision, strict=self.options.strict,
                                            timeout_seconds=None))
                if pair is not None:
                    _remember(self._pairs, pair, matched)
            if matched:
                return True
        return False

    def _prediction(self, text: str, slow: Callable) -> tuple[list, Optional[tuple]]:
        if self.search is None:
            span = extracted_answer(text, self.options.extract)
            if not span:
                return [], None
            if span not in self._answers:
                slow(None)
                parsed = parse_gold(span, self.options.targets)
                _remember(self._answers, span, (parsed, prediction_key(parsed)))
            return self._answers[span]
        found = self.search.find(text, slow)
        if found is not None:
            return found
        slow(None)  # the whole text is searched: announced, as a parse is
        found = self.search.find_all(text)
        if found is not None:
            return found
        predicted = self._parse(text, self._config, parsing_timeout=None)
        return predicted, prediction_key(predicted)


def _serve(conn, parent_pid: int, options: MathOptions) -> None:
    """The helper process: batches of (text, answer) in; verdicts out in runs of cache hits,
    sent before each step that is not a cache hit, which is announced (`begin`) with its
    comparison's key: the worker knows which sample a check that overruns belongs to.
    A `careful` batch sends each verdict on its own (after an overrun that was not announced)."""
    die_with_parent(parent_pid)
    # This process only: the reference path (`math_verdict`) stays math-verify's own.
    latex_parse.install()
    constant_eq.install()
    judge = Judge(options)
    judge.verdict("\\boxed{1}", "1")  # the imports and first parses: start-up, not a timed check
    conn.send(("ready", None))
    done: list = []

    def flush():
        if done:
            conn.send(("done", done.copy()))
            done.clear()

    def begin(key=None):
        flush()
        conn.send(("begin", key))

    while True:
        try:
            pairs, skip, careful = conn.recv()
        except EOFError:
            return
        sent = time.monotonic()
        for text, answer in pairs:
            done.append(judge.verdict(text, answer, skip, begin))
            if careful or time.monotonic() - sent > FLUSH_S:
                flush()
                sent = time.monotonic()
        flush()


class MathChecker:
    """Checks in one helper process (`_serve`), replaced whenever a check overruns or it dies."""

    def __init__(self, timeout_s: float = 10.0, options: MathOptions = MathOptions()):
        self.timeout_s = timeout_s
        self.options = options
        self._process = None
        self._conn = None
        self._overran: set = set()  # comparisons that overran: a timeout at once from now on
        self._careful = False  # the next batch sends every verdict on its own
        self._starting = False  # a helper was started and has not said it is ready yet

    def check(self, text: str, answer: str) -> Verdict:
        return self.check_many([(text, answer)])[0]

    def check_many(self, pairs: list[tuple[str, str]]) -> list[Verdict]:
        """Verdicts of (text, gold answer) pairs, in order."""
        pairs = [(text, str(answer)) for text, answer in pairs]
        verdicts: list[Verdict] = []
        while len(verdicts) < len(pairs):
            verdicts += self._round_trip(pairs[len(verdicts):len(verdicts) + CHUNK])
        return verdicts

    def _round_trip(self, pairs: list) -> list[Verdict]:
        """Verdicts of the first pairs: all of them, or up to one that overran or killed the
        helper (none where an overrun cannot be told apart: the next batch is careful)."""
        careful, self._careful = self._careful, False
        try:
            conn = self._helper()
            conn.send((pairs, frozenset(self._overran), careful))
        except OSError:  # it died since: once more with a new one
            self._kill()
            conn = self._helper()
            conn.send((pairs, frozenset(self._overran), careful))
        verdicts: list[Verdict] = []
        began, key = None, None  # when the current sample's slow step began, and its comparison
        heard = time.monotonic()
        try:
            while len(verdicts) < len(pairs):
                deadline = (began if began is not None else heard) + self.timeout_s
                if not conn.poll(max(0.0, deadline - time.monotonic())):
                    self._kill()
                    if began is None and not careful:
                        self._careful = True  # a hang between announcements: which sample is unknown
                        return verdicts
                    if key is not None:
                        self._overran.add(key)
                    return [*verdicts, self._timeout()]
                kind, value = conn.recv()
                heard = time.monotonic()
                if kind == "begin":
                    began = heard if began is None else began
                    key = value if value is not None else key
                    continue
                verdicts += [self._timeout() if v is None else Verdict(*v) for v in value]
                began, key = None, None
        except (EOFError, OSError):
            code = self._exit_code()
            self._kill()
            if began is None and not careful:
                self._careful = True  # it died between announcements: which sample killed it is unknown
                return verdicts
            return [*verdicts, Verdict(False, "error", None, f"the math checker died (exit code {code})")]
        return verdicts

    def _exit_code(self) -> Optional[int]:
        """The dead helper's exit code (-9: killed), once the system has it."""
        self._process.join(1)
        return self._process.exitcode

    def _timeout(self) -> Verdict:
        return Verdict(False, "timeout", None, f"math-verify took over {self.timeout_s:g} s")

    def start(self) -> None:
        """Starts the helper without waiting for it (its imports overlap the caller's reading of
        a unit); the first check waits until it is up."""
        if self._process is None or not self._process.is_alive():
            self._kill()
            # The helper's parent-death signal is tied to the thread that starts it.
            self._process, self._conn = in_lasting_thread(self._start)
            self._starting = True

    def _helper(self):
        self.start()
        if self._starting:
            try:
                # Start-up (imports, first parses) is not a check: no timeout, as long as it lives.
                while not self._conn.poll(1.0):
                    if not self._process.is_alive():
                        break
                self._conn.recv()
            except (EOFError, OSError):
                code = self._exit_code()
                self._kill()
                raise RuntimeError(f"the math checker process exited while starting (exit code {code})") from None
            self._starting = False
        return self._conn

    def _start(self):
        return start_helper(_serve, os.getpid(), self.options)

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
            self._conn.close()
        self._process = self._conn = None

    def close(self) -> None:
        self._kill()
