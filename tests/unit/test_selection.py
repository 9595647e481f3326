"""Unit tests for celery_parselog.selection: which task names are captured."""

from __future__ import annotations

import re

import pytest

from celery_parselog.selection import TaskSelector, pattern_problem

# -- TaskSelector --------------------------------------------------------------------


def test_exact_name_matches_only_itself() -> None:
    """An exact name matches that task and no prefix, suffix or look-alike of it."""
    selector = TaskSelector(["proj.parse"])
    assert selector.matches("proj.parse")
    assert not selector.matches("proj.parse2")
    assert not selector.matches("proj.pars")
    assert not selector.matches("projXparse")
    assert not selector.matches("other.proj.parse")
    assert not selector.matches("PROJ.PARSE")


def test_star_glob_matches_whole_name() -> None:
    """``proj.*`` matches names under ``proj.``, anchored at both ends, dot literal."""
    selector = TaskSelector(["proj.*"])
    assert selector.matches("proj.parse")
    assert selector.matches("proj.sub.deep")
    assert selector.matches("proj.")
    assert not selector.matches("proj")
    assert not selector.matches("projXparse")
    assert not selector.matches("x.proj.parse")


def test_question_mark_glob_matches_one_character() -> None:
    """``?`` matches exactly one character."""
    selector = TaskSelector(["proj.t?"])
    assert selector.matches("proj.t1")
    assert not selector.matches("proj.t")
    assert not selector.matches("proj.t12")


def test_bracket_glob_matches_character_class() -> None:
    """``[ab]`` matches one of the listed characters and ``[!ab]`` any other."""
    selector = TaskSelector(["proj.[ab]", "other.[!ab]"])
    assert selector.matches("proj.a")
    assert selector.matches("proj.b")
    assert not selector.matches("proj.c")
    assert selector.matches("other.c")
    assert not selector.matches("other.a")


def test_mixed_exact_and_glob_patterns() -> None:
    """Exact names and globs combine: a name matching any of them is selected."""
    selector = TaskSelector(["billing.invoice", "parsers.*", "etl.step?"])
    assert selector.matches("billing.invoice")
    assert selector.matches("parsers.csv")
    assert selector.matches("etl.step3")
    assert not selector.matches("billing.refund")
    assert not selector.matches("etl.step10")
    assert not selector.matches("parser.csv")


def test_several_globs_do_not_leak_into_each_other() -> None:
    """Combined globs each stay anchored, so one cannot widen another."""
    selector = TaskSelector(["a.*", "b.?"])
    assert selector.matches("a.anything")
    assert selector.matches("b.x")
    assert not selector.matches("b.xy")
    assert not selector.matches("ab.x")


def test_regex_characters_in_patterns_are_literal() -> None:
    """Regex metacharacters other than glob ones are matched literally."""
    selector = TaskSelector(["proj.(x)+*", "a|b"])
    assert selector.matches("proj.(x)+tail")
    assert not selector.matches("proj.xx")
    assert selector.matches("a|b")
    assert not selector.matches("a")


def test_patterns_may_be_a_generator() -> None:
    """Any iterable of patterns is accepted, including a one-shot generator."""
    selector = TaskSelector(pattern for pattern in ["x.y", "z.*"])
    assert selector.matches("x.y")
    assert selector.matches("z.q")


def test_no_patterns_is_false_and_matches_nothing() -> None:
    """A selector without patterns is falsy and selects no task."""
    selector = TaskSelector([])
    assert not selector
    assert bool(selector) is False
    assert not selector.matches("anything")
    assert not selector.matches("")


@pytest.mark.parametrize("patterns", [["exact.name"], ["glob.*"], ["exact", "glob.*"]])
def test_some_patterns_is_true(patterns: list[str]) -> None:
    """A selector with exact names, globs or both is truthy."""
    assert bool(TaskSelector(patterns)) is True


class _CountingPattern:
    """Stands in for the compiled glob and counts how often it is consulted."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.calls: list[str] = []

    def match(self, text: str) -> re.Match[str] | None:
        self.calls.append(text)
        return self.pattern.match(text)


def test_answer_is_cached_per_task_name() -> None:
    """Each task name is decided once; later asks do not consult the patterns again."""
    selector = TaskSelector(["proj.*"])
    counting = _CountingPattern(re.compile(r"proj\..*\Z"))
    selector._glob = counting  # type: ignore[assignment]
    assert selector.matches("proj.a") is True
    assert selector.matches("proj.a") is True
    assert selector.matches("other") is False
    assert selector.matches("other") is False
    assert selector.matches("proj.a") is True
    assert counting.calls == ["proj.a", "other"]


def test_cached_answer_is_returned_even_if_patterns_change() -> None:
    """A decided name keeps its answer: the cache, not the patterns, answers repeat asks."""
    selector = TaskSelector(["proj.*"])
    assert selector.matches("proj.a") is True
    selector._glob = None
    assert selector.matches("proj.a") is True
    assert selector.matches("proj.b") is False


def test_exact_match_returns_bool() -> None:
    """matches returns a real bool for both exact and glob hits."""
    selector = TaskSelector(["a", "b.*"])
    assert selector.matches("a") is True
    assert selector.matches("b.c") is True
    assert selector.matches("c") is False


# -- pattern_problem -----------------------------------------------------------------


@pytest.mark.parametrize("pattern", [None, 3, b"proj.*", ["proj.*"]])
def test_non_string_pattern_is_a_problem(pattern: object) -> None:
    """A pattern that is not a string is reported with its repr."""
    problem = pattern_problem(pattern)
    assert problem == f"{pattern!r} is not a string"


def test_empty_pattern_is_a_problem() -> None:
    """An empty pattern is reported as matching no task."""
    assert pattern_problem("") == "an empty pattern matches no task"


@pytest.mark.parametrize("pattern", [" proj.*", "proj.* ", "proj. parse", "proj.\tx", "\n", " "])
def test_whitespace_pattern_is_a_problem(pattern: str) -> None:
    """A pattern with whitespace anywhere is reported."""
    problem = pattern_problem(pattern)
    assert problem is not None
    assert "whitespace" in problem
    assert repr(pattern) in problem


@pytest.mark.parametrize("pattern", ["proj.[abc", "[", "proj.[a]x[", "a]b[c"])
def test_unclosed_bracket_is_a_problem(pattern: str) -> None:
    """A ``[`` that is never closed is reported."""
    problem = pattern_problem(pattern)
    assert problem == f"{pattern!r} has a [ that is never closed"


@pytest.mark.parametrize("pattern", ["proj.[[ab]]", "[a[b]", "[[]"])
def test_nested_bracket_is_a_problem(pattern: str) -> None:
    """A ``[`` opened inside another ``[`` is reported."""
    problem = pattern_problem(pattern)
    assert problem == f"{pattern!r} opens a [ inside another"


@pytest.mark.parametrize(
    "pattern",
    [
        "proj.parse",
        "proj.*",
        "proj.?",
        "proj.[ab]",
        "proj.[!ab]*",
        "proj.[a][b]",
        "a]b",
        "*",
        "celery.backend_cleanup",
    ],
)
def test_valid_pattern_has_no_problem(pattern: str) -> None:
    """Exact names and well-formed globs have no problem."""
    assert pattern_problem(pattern) is None
