"""math-verify's LaTeX parse, with parse trees and numbers reused across the strings of a pool.

math-verify reads LaTeX with latex2sympy2: an ANTLR grammar run by ANTLR's pure-Python
runtime, then a conversion of the tree to sympy. At pool scale two steps dominate, and both
give the same result again and again:
- The parse. Adaptive prediction takes 20-100 ms for a warm parser to read `(3, 17)`,
  `[-4, 9)` or `x^2 + 5x + 6`. A pool's answers take few shapes: `(3, 17)` and `(12,5)` are
  the same tokens with other texts. The grammar's decisions read token types only (its only
  predicates are precedence predicates of left-recursive rules), so a string whose token
  types equal an earlier one's parses to the same tree. `create_parser` lexes each string;
  where its token types were parsed before, it points that tree's tokens at the new string
  (text, offsets, input stream: all the conversion reads) and hands the tree over. A parse
  that fails is not kept: the next string of those tokens fails the same way, in full.
- The numbers. latex2sympy2 makes each number with `sympy.Number(text)`, which goes through
  sympy's expression parser (about 0.5 ms); `parse_number` keeps each text's number (sympy
  numbers are immutable).
The results equal latex2sympy2's own: `tests/unit/test_latex_parse.py` compares them on every
string math-verify's own tests parse, and on variants of them with other numbers.

Written against latex2sympy2_extended 1.11 (`_Latex2Sympy.parse` asks `create_parser(text)`
for `.math()` and reads nothing else of the parser; numbers come from `parse_number`); with
another version math-verify's parse is left as it is. Trees are kept per thread: reusing one
rebinds its tokens.
"""

import importlib.metadata
import logging
import threading

log = logging.getLogger(__name__)

MAX_KEPT = 10_000  # kept trees per thread, kept numbers: more are forgotten all at once (memory stays bounded)
_SUPPORTED = "1.11."  # latex2sympy2_extended versions whose parse() this was written for

_local = threading.local()
_numbers: dict = {}  # number text -> latex2sympy2's sympy number of it


def supported() -> bool:
    return importlib.metadata.version("latex2sympy2_extended").startswith(_SUPPORTED)


def _trees() -> dict:
    trees = getattr(_local, "trees", None)
    if trees is None:
        trees = _local.trees = {}
    return trees


class _Kept:
    """Stands in for the parser: `.math()` is the kept tree, now reading the new string."""

    def __init__(self, tree):
        self.tree = tree

    def math(self):
        return self.tree


class _Fresh:
    """The real parser; keeps its tree, and the tokens it was built from, once it parses."""

    def __init__(self, parser, key: tuple, tokens: list):
        self.parser, self.key, self.tokens = parser, key, tokens

    def math(self):
        tree = self.parser.math()  # raises on any syntax error: only clean parses are kept
        trees = _trees()
        if len(trees) >= MAX_KEPT:
            trees.clear()
        trees[self.key] = (tree, self.tokens)
        return tree


def _rebind(kept: list, new: list) -> None:
    """Points the kept tree's tokens at the new string: same types and positions, other text."""
    for old, token in zip(kept, new):
        old.source, old.start, old.stop, old._text = token.source, token.start, token.stop, token._text
        old.line, old.column = token.line, token.column


def _converter_class():
    from antlr4 import CommonTokenStream, InputStream
    from latex2sympy2_extended.antlr_parser import PSLexer, PSParser
    from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy

    class ReusingLatex2Sympy(_Latex2Sympy):
        def create_parser(self, latex_str: str):
            lexer = PSLexer(InputStream(latex_str))
            lexer.removeErrorListeners()
            lexer.addErrorListener(self.MathErrorListener(latex_str))
            stream = CommonTokenStream(lexer)
            stream.fill()
            # A string is keyed by all its tokens, EOF included: a parse the conversion starts on a
            # part of the string (fewer tokens) never rebinds the tree being converted.
            key = tuple((token.type, token.channel) for token in stream.tokens)
            kept = _trees().get(key)
            if kept is not None:
                tree, tokens = kept
                _rebind(tokens, stream.tokens)
                return _Kept(tree)
            parser = PSParser(stream)
            parser.removeErrorListeners()
            parser.addErrorListener(self.MathErrorListener(latex_str))
            return _Fresh(parser, key, list(stream.tokens))

        def parse_number(self, text: str):
            number = _numbers.get(text)
            if number is None:
                if len(_numbers) >= MAX_KEPT:
                    _numbers.clear()
                number = _numbers[text] = super().parse_number(text)
            return number

    return ReusingLatex2Sympy


_CLASS = None


def latex2sympy(latex_str: str, variable_values=None, is_real=None, convert_degrees: bool = False,
                normalization_config="default", conversion_config=None):
    """latex2sympy2's `latex2sympy`, same arguments and result, with parse trees and numbers reused."""
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig, NormalizationConfig, normalize_latex

    global _CLASS
    if _CLASS is None:
        _CLASS = _converter_class()
    if normalization_config == "default":
        normalization_config = NormalizationConfig()
    converter = _CLASS(variable_values, is_real, convert_degrees, config=conversion_config or ConversionConfig())
    if normalization_config is not None:
        latex_str = normalize_latex(latex_str, normalization_config)
    return converter.parse(latex_str)


def install() -> bool:
    """math-verify's LaTeX parses in this process reuse trees and numbers; False (and a warning)
    where the installed latex2sympy2 is not the version this was written for."""
    from math_verify import parser

    if not supported():
        log.warning("latex2sympy2_extended %s is not the version Troop's parse reuse was written for: "
                    "math-verify parses every answer in full", importlib.metadata.version("latex2sympy2_extended"))
        return False
    parser.latex2sympy = latex2sympy
    return True
