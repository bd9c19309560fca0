"""The CI switch in conftest.py: with FERKIT_REQUIRE_SHARED=1 / FERKIT_REQUIRE_BROWSER=1, a test
that would skip for want of ../shared or Chromium fails instead."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")
TESTS = '''
import pytest

@pytest.mark.shared
def test_marked_shared(shared_dir):
    pass

def test_uses_shared_dir_unmarked(shared_dir):
    pass

@pytest.mark.browser
def test_browser():
    pytest.skip("/usr/bin/chromium is missing")

def test_plain_skip():
    pytest.skip("not relevant here")

@pytest.mark.shared
@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
'''


@pytest.fixture
def suite(pytester, monkeypatch, tmp_path):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_switch=TESTS)
    monkeypatch.setenv("FERKIT_SHARED_DIR", str(tmp_path / "no-such-folder"))
    for name in ("FERKIT_REQUIRE_SHARED", "FERKIT_REQUIRE_BROWSER"):
        monkeypatch.delenv(name, raising=False)
    return pytester


def outcomes(recorder) -> dict[str, str]:
    """test name -> passed, failed or skipped (a failure at setup counts as failed)."""
    return {report.nodeid.split("::")[1]: report.outcome
            for report in recorder.getreports("pytest_runtest_logreport")
            if report.when == "call" or report.outcome != "passed"}


def run(suite, monkeypatch, **env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return outcomes(suite.inline_run("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestUnknownMarkWarning"))


def test_without_the_switch_missing_data_skips(suite, monkeypatch):
    assert run(suite, monkeypatch) == {"test_marked_shared": "skipped", "test_uses_shared_dir_unmarked": "skipped",
                                       "test_browser": "skipped", "test_plain_skip": "skipped",
                                       "test_expected_failure": "skipped"}


def test_require_shared_fails_the_shared_tests_only(suite, monkeypatch):
    assert run(suite, monkeypatch, FERKIT_REQUIRE_SHARED="1") == {
        "test_marked_shared": "failed", "test_uses_shared_dir_unmarked": "failed", "test_browser": "skipped",
        "test_plain_skip": "skipped", "test_expected_failure": "skipped"}


def test_require_browser_fails_the_browser_tests_only(suite, monkeypatch):
    assert run(suite, monkeypatch, FERKIT_REQUIRE_BROWSER="1") == {
        "test_marked_shared": "skipped", "test_uses_shared_dir_unmarked": "skipped", "test_browser": "failed",
        "test_plain_skip": "skipped", "test_expected_failure": "skipped"}


def test_the_failure_says_why(suite, monkeypatch):
    monkeypatch.setenv("FERKIT_REQUIRE_SHARED", "1")
    result = suite.runpytest("-p", "no:cacheprovider", "-k", "marked_shared")
    result.assert_outcomes(errors=1)  # the skip happens in the fixture: an error at setup
    result.stdout.fnmatch_lines(["*FERKIT_REQUIRE_SHARED=1 says this test must run here: ../shared is absent*"])
