"""pytest hooks of pytest-cryobench. Thin: each hook hands over to one module of :mod:`pytest_cryobench.plugin`.

Without ``--cryobench`` (or ``CRYOBENCH=1``, or ini ``cryobench = true``) every hook returns at
once and nothing beyond :mod:`pytest_cryobench.plugin.options` (standard library only) is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_cryobench.plugin.options import OPTIONS, OptionError, add_to_argparse, is_enabled

ENABLED = pytest.StashKey[bool]()


def _enabled(config: pytest.Config) -> bool:
    return config.stash.get(ENABLED, False)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cryobench", "cryo-EM benchmark (pytest-cryobench)")
    group.addoption("--cryobench", action="store_true", default=False,
                    help="run the cryo-EM benchmark suites (also CRYOBENCH=1 or ini cryobench = true)")
    add_to_argparse(group)
    parser.addini("cryobench", "run the cryo-EM benchmark suites (true/false)", default="")
    for spec in OPTIONS:
        parser.addini(spec.ini_name, spec.help, type="linelist" if spec.multiple else "string",
                      default=[] if spec.multiple else "")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    try:
        enabled = is_enabled(config.getoption("cryobench"), os.environ, config.getini("cryobench"))
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[ENABLED] = enabled
    if enabled:
        from pytest_cryobench.plugin import configure

        configure.configure(config)


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if _enabled(parent.config):
        from pytest_cryobench.plugin import collection

        return collection.collect_file(file_path, parent)
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if _enabled(metafunc.config):
        from pytest_cryobench.plugin import collection

        collection.parametrize_devices(metafunc)
        collection.parametrize_gpus(metafunc)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _enabled(config):
        from pytest_cryobench.plugin import collection

        collection.deselect_unasked_requirements(config, items)
        collection.check_markers(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    if not _enabled(item.config):
        return (yield)
    from pytest_cryobench.errors import CryobenchError

    try:
        return (yield)
    except CryobenchError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)  # outside the except block: no exception chain shown


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    if not _enabled(item.config):
        return (yield)
    from pytest_cryobench.errors import CryobenchError
    from pytest_cryobench.plugin import outcome

    try:
        result = yield
    except CryobenchError as exc:
        message = str(exc)
        outcome.finish_case(item, "failed", message)
        result = None
    except MemoryError as exc:  # NumPy: MemoryError; CuPy's OutOfMemoryError derives from it
        message = outcome.out_of_memory_message(item, exc)
        outcome.finish_case(item, "failed", message)
        result = None
    else:
        message = None
    if message is not None:
        pytest.fail(message, pytrace=False)  # outside the except block: no exception chain shown
    failure = outcome.finish_case(item, "passed")
    if failure:
        pytest.fail(failure, pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if _enabled(item.config) and report.when in ("setup", "call"):
        from pytest_cryobench.plugin import outcome

        outcome.update_outcome(item, report)
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _enabled(session.config):
        from pytest_cryobench.plugin import writing

        writing.finish_run(session, exitstatus)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _enabled(config):
        from pytest_cryobench.plugin import summary

        summary.terminal_summary(terminalreporter, config)
