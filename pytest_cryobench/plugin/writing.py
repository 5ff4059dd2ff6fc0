"""Writing a run's result files at session end (also after Ctrl-C), and removing its generated data."""

from __future__ import annotations

import pytest

from pytest_cryobench.measure.machine import instance_information
from pytest_cryobench.plugin.session import RUN_KEY, RunState, build_test_info
from pytest_cryobench.record.model import CaseRecord, group_document, write_group


def finish_run(session: pytest.Session, exitstatus: int) -> None:
    """Write the result files (also after Ctrl-C) and remove this run's generated data."""
    state = session.config.stash.get(RUN_KEY, None)
    if state is None:
        return
    state.interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    try:
        if state.records:
            _write_results(state)
    finally:
        if state.problems and session.exitstatus == pytest.ExitCode.OK:
            # the cases passed but nothing (or not everything) was saved: CI must not stay green
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if not state.settings.keep_data:
            from pytest_cryobench.data.particles import remove_tree

            for directory in state.work_dirs:
                remove_tree(directory)
        state.release()


def _write_results(state: RunState) -> None:
    from pytest_cryobench.record.anonymize import anonymize_document

    s = state.settings
    info = instance_information(s.project_dir, s.cache_dir, state.inventory)
    test_info = build_test_info(state, info)
    groups: dict[str, list[CaseRecord]] = {}
    for record in state.records:
        groups.setdefault(record.group, []).append(record)
    for group, records in groups.items():
        doc = group_document(group, records, test_info, state.run_id)
        if s.anonymize:
            doc = anonymize_document(doc)
        try:
            state.written.extend(write_group(s.output, doc))
        except OSError as exc:
            state.problems.append(f"could not write the {group} results to {s.output}: {exc.strerror or exc}")
        except ValueError as exc:  # json's allow_nan=False: a figure that is not a number
            state.problems.append(f"could not write the {group} results to {s.output}: {exc} (a figure is NaN "
                                  "or infinite: a case measured nothing)")
