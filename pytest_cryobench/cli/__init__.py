"""The ``cryobench`` console script.

``cryobench run``
    runs the benchmark (``pytest --cryobench``) with the same options as the plugin, written
    without their prefix (``--profile smoke`` is ``--cryobench-profile smoke``);
``cryobench requirements``
    the same for the requirements and Live readiness checks (``-m requirements``);
``cryobench compare`` / ``cryobench report``
    runs and references side by side as a table, or as a self-contained HTML page;
``cryobench references`` / ``cryobench import-cryosparc``
    lists the known references; turns CryoSPARC Benchmark JSON into one;
``cryobench save-reference``
    turns a run's result files into a reference file;
``cryobench validate``
    checks result and reference files against their schemas (exit status 0 when all are valid);
``cryobench anonymize``
    strips host names, bus ids and paths from result files;
``cryobench data generate`` / ``cryobench data verify``
    pre-provisions the synthetic data set, or checks one (or a real data set) file by file;
``cryobench fleet run|status|report``
    one job per node of a SLURM cluster, and the nodes compared (:mod:`pytest_cryobench.fleet.cli`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_cryobench.plugin.options import OPTIONS, add_to_argparse


def _run(args: argparse.Namespace) -> int:
    """``pytest --cryobench ...`` in a child process: this one has already imported the plugin,
    which pytest could then no longer assert-rewrite."""
    import subprocess

    argv = ["--cryobench"]
    for spec in OPTIONS:
        value = getattr(args, spec.dest)
        if value is None:
            continue
        if spec.flag:
            argv.append(spec.cli_flag)
        elif spec.multiple:
            argv += [f"{spec.cli_flag}={item}" for item in value]
        else:  # the --opt=value form: pytest finds its ini file before it knows plugin options
            argv.append(f"{spec.cli_flag}={value}")
    extra = list(args.pytest_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    if getattr(args, "marker", None):
        argv += ["-m", args.marker]
    return subprocess.call([sys.executable, "-m", "pytest", *argv, *extra])


def _command_line(args: argparse.Namespace) -> str:
    """The ``cryobench`` command that is running, as a shell would take it (recorded in files it writes)."""
    import shlex

    return " ".join(shlex.quote(part) for part in ["cryobench", args.command, *args.argv])


def _write_new_json(doc: dict, out: Path, force: bool, command: str) -> bool:
    """Write ``doc`` atomically, unless ``out`` exists and ``force`` is not given (then say so)."""
    from pytest_cryobench.measure.fsutil import atomic_write

    if out.exists() and not force:
        print(f"cryobench {command}: {out} exists; use --force to replace it", file=sys.stderr)
        return False
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out) as handle:
            json.dump(doc, handle, indent=2, allow_nan=False)
            handle.write("\n")
    except OSError as exc:
        print(f"cryobench {command}: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return False
    return True


def _save_reference(args: argparse.Namespace) -> int:
    from pytest_cryobench.errors import CryobenchError
    from pytest_cryobench.record.references import load_result, make_reference, sibling_result_files

    try:
        paths: list[Path] = []
        for given in args.results:
            for path in sibling_result_files(Path(given)):
                if path not in paths:
                    paths.append(path)
        docs = [load_result(p) for p in paths]
        ref = make_reference(docs, args.name, args.description or "")
    except CryobenchError as exc:
        print(f"cryobench save-reference: {exc}", file=sys.stderr)
        return 2
    ref["reference_command"] = _command_line(args)
    if args.anonymize:
        from pytest_cryobench.record.anonymize import anonymize_document

        ref = anonymize_document(ref)
    if args.install:
        from pytest_cryobench.cli.data import data_dir

        out = data_dir(args) / "references" / f"{args.name}.json"
    else:
        out = Path(args.output) if args.output else Path(f"{args.name}.json")
    if not _write_new_json(ref, out, args.force, "save-reference"):
        return 2
    groups = ", ".join(sorted(ref["tests"]))
    print(f"wrote reference {ref['name']!r} ({ref['profile']} profile, {ref['backend']} backend; "
          f"groups {groups}) to {out}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from pytest_cryobench.errors import CryobenchError
    from pytest_cryobench.record.references import comparison_from_reference, load_result, read_json

    bad = 0
    for given in args.files:
        path = Path(given)
        if path.suffix.lower() == ".csv" and path.exists():
            print(f"{path}: NOT CHECKED: CSV result files have no schema; validate the .json file of the same run")
            bad += 1
            continue
        try:
            doc = read_json(path, "file")
            if isinstance(doc, dict) and doc.get("kind") == "cryobench-reference":
                comparison_from_reference(doc, path)
                what = "reference"
            else:
                load_result(path)
                what = "result file"
        except CryobenchError as exc:
            print(f"{path}: INVALID: {exc}")
            bad += 1
            continue
        print(f"{path}: valid {what}")
    return 1 if bad else 0


def _anonymize(args: argparse.Namespace) -> int:
    from pytest_cryobench.errors import CryobenchError
    from pytest_cryobench.measure.fsutil import atomic_write
    from pytest_cryobench.record.anonymize import anonymize_document
    from pytest_cryobench.record.references import read_json

    for given in args.files:
        path = Path(given)
        if path.suffix.lower() == ".csv" and path.exists():
            print(f"{path}: a CSV result file holds only test names and figures; nothing to strip")
            continue
        try:
            doc = read_json(path, "file")
        except CryobenchError as exc:
            print(f"cryobench anonymize: {exc}", file=sys.stderr)
            return 2
        out = path.with_name(path.stem + ".anon" + path.suffix) if not args.in_place else path
        try:
            with atomic_write(out) as handle:
                json.dump(anonymize_document(doc), handle, indent=2)
                handle.write("\n")
        except OSError as exc:
            print(f"cryobench anonymize: cannot write {out}: {exc.strerror}", file=sys.stderr)
            return 2
        print(f"wrote {out}")
    return 0


def _reference_dirs(args: argparse.Namespace) -> list[Path]:
    """Where reference names are looked up: the user's ``<data-dir>/references``, then the shipped ones."""
    from pytest_cryobench.cli.data import data_dir
    from pytest_cryobench.locations import bundled_dir

    return [data_dir(args) / "references", bundled_dir("references")]


def _load_columns(args: argparse.Namespace, command: str):
    """The columns named on the command line and the index of the chosen reference column.

    A ``--reference`` that is none of the columns given (a reference name, another file) is
    added as the first column: naming a reference means "compare with it".
    """
    from pytest_cryobench.errors import CryobenchError

    columns, specs = _columns_of(args.runs, args, command)
    if args.reference is None:
        return columns, 0
    matches = _reference_matches(args.reference, specs, columns)
    if not matches:
        try:
            columns, specs = _columns_of([args.reference, *args.runs], args, command)
        except CryobenchError as exc:
            listing = ", ".join(c.name for c in columns)
            raise CryobenchError(f"--reference {args.reference}: not one of the columns given ({listing}), "
                                 f"and not a file or reference of that name ({exc})") from None
        matches = _reference_matches(args.reference, specs, columns)
    return columns, matches[0] if matches else 0


def _reference_matches(reference: str, specs: list[str], columns: list) -> list[int]:
    wanted = Path(reference).expanduser()
    wanted = wanted.resolve() if wanted.exists() else None
    return [i for i, (spec, column) in enumerate(zip(specs, columns, strict=True))
            if reference in (spec, column.name, column.meta.get("source_run"), column.path.name,
                             column.path.stem) or (wanted is not None and wanted == column.path.resolve())]


def _columns_of(runs: list[str], args: argparse.Namespace, command: str):
    """Load the columns ``runs`` (each run or file once; equal names kept apart) and their specs."""
    from pytest_cryobench.record.references import load_column

    columns, specs, seen = [], [], {}
    for spec in runs:
        column = load_column(spec, _reference_dirs(args))
        where = column.path.resolve()
        key = (column.kind, str(where.parent), column.meta.get("source_run")) if column.kind == "run" else (
            column.kind, str(where))
        if key in seen:  # one run named by two of its group files, or one file twice
            print(f"cryobench {command}: {spec} is the same {column.kind} as {seen[key]}; shown once",
                  file=sys.stderr)
            continue
        seen[key] = spec
        columns.append(column)
        specs.append(spec)
    names = [c.name for c in columns]
    for index, name in enumerate(names):  # the same run twice, or two runs of one id: keep them apart
        if names.count(name) > 1:
            columns[index] = dataclasses.replace(columns[index], name=f"{name} ({specs[index]})")
    return columns, specs


def _compare(args: argparse.Namespace) -> int:
    from pytest_cryobench.errors import CryobenchError
    from pytest_cryobench.record.compare import build_table, render_legend, render_text

    try:
        columns, reference = _load_columns(args, "compare")
    except CryobenchError as exc:
        print(f"cryobench compare: {exc}", file=sys.stderr)
        return 2
    table = build_table(columns, reference, tolerance=args.tolerance, detail=args.detail,
                        only_changed=args.only_changed)
    if table.rows:
        print("\n".join(render_text(table)))
    else:
        print("no test changed beyond the tolerance" if args.only_changed else "no tests in the files given")
    print()
    print("\n".join(render_legend(table)))
    regressions = table.regressions()
    if regressions:
        print(f"\n{len(regressions)} test(s) slower than {columns[reference].name} beyond the tolerance:")
        for row, name, detail in regressions:
            print(f"  {row.group}/{row.test} in {name}: {detail}")
        return 1
    return 0


def _report(args: argparse.Namespace) -> int:
    from pytest_cryobench.errors import CryobenchError
    from pytest_cryobench.record.compare import build_table
    from pytest_cryobench.record.html import write_html

    html = Path(args.html)
    if (html.exists() or html.is_symlink()) and not args.force:
        print(f"cryobench report: {html} exists; use --force to replace it", file=sys.stderr)
        return 2
    try:
        columns, reference = _load_columns(args, "report")
        if any(html.exists() and html.resolve() == column.path.resolve() for column in columns):
            raise CryobenchError(f"--html {html} is one of the files being reported; choose another name")
        table = build_table(columns, reference, tolerance=args.tolerance, detail=True,
                            only_changed=args.only_changed)
        out = write_html(table, Path(args.html), args.title)
    except CryobenchError as exc:
        print(f"cryobench report: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cryobench report: cannot write {args.html}: {exc.strerror}", file=sys.stderr)
        return 2
    slower = len(table.regressions())
    print(f"wrote {out} ({len(columns)} column(s), {len(table.groups)} group(s)"
          + (f"; {slower} test(s) slower than the reference" if slower else "") + ")")
    return 1 if slower else 0


def _references(args: argparse.Namespace) -> int:
    from pytest_cryobench.errors import CryobenchError
    from pytest_cryobench.record.compare import date_of, machine_summary
    from pytest_cryobench.record.references import known_references, load_column
    from pytest_cryobench.record.text import align_rows

    dirs = _reference_dirs(args)
    found = known_references(dirs)
    if not found:
        print("no references found in " + ", ".join(str(d) for d in dirs if d is not None))
        return 0
    rows = [("name", "profile", "backend", "data", "machine", "date", "file")]
    problems = []
    for name, path in sorted(found.items()):
        try:
            ref = load_column(str(path), dirs)
        except CryobenchError as exc:
            problems.append(f"{path}: {exc}")
            continue
        rows.append((name, ref.context["profile"], ref.context["backend"], ref.context["data"],
                     machine_summary(ref.meta.get("instance_information")), date_of(ref.meta.get("created_at"), "-"),
                     str(path)))
    print("\n".join(align_rows(rows)))
    for problem in problems:
        print(f"skipped: {problem}")
    return 1 if problems else 0


def _import_cryosparc(args: argparse.Namespace) -> int:
    from pytest_cryobench.errors import CryobenchError
    from pytest_cryobench.record.cryosparc_import import convert
    from pytest_cryobench.record.references import read_json

    paths = [Path(p) for p in args.files]
    name = args.name or f"cryosparc-{paths[0].stem}"
    try:
        docs = [read_json(p, "CryoSPARC result") for p in paths]
        ref = convert(docs, name, sources=paths, device=args.device, description=args.description or "",
                      command=_command_line(args))
    except CryobenchError as exc:
        print(f"cryobench import-cryosparc: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else Path(f"{ref['name']}.json")
    if not _write_new_json(ref, out, args.force, "import-cryosparc"):
        return 2
    mapped = sum(1 for tests in ref["tests"].values() for e in tests.values() if not e.get("not_comparable"))
    other = sum(1 for tests in ref["tests"].values() for e in tests.values() if e.get("not_comparable"))
    print(f"wrote reference {ref['name']!r} to {out}: {mapped} test(s) mapped, {other} kept as not comparable "
          f"(compared only with runs of --cryobench-data <real data set> --cryobench-profile full on a GPU)")
    return 0


def _tolerance_arg(text: str) -> float:
    from pytest_cryobench.plugin.options import parse_tolerance

    try:
        return parse_tolerance(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_column_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_OR_REF",
                        help="a result file (its run's other group files come along), a reference file, "
                             "a reference name (see `cryobench references`) or a CryoSPARC Benchmark JSON")
    parser.add_argument("--reference", metavar="NAME",
                        help="the column to compare against: a run id, reference name or file given, or "
                             "a reference name or file not given (then added as the first column; default: "
                             "the first column)")
    parser.add_argument("--tolerance", type=_tolerance_arg, metavar="RATIO",
                        help="allowed slowdown ratio (default: each test's own, else 1.25)")
    parser.add_argument("--data-dir", dest="data_dir", help="where generated data and your own references live")


def build_parser() -> argparse.ArgumentParser:
    from pytest_cryobench import __version__

    parser = argparse.ArgumentParser(prog="cryobench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"pytest-cryobench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the benchmark (pytest --cryobench)")
    add_to_argparse(run, prefix="--")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER,
                     help="further pytest arguments after '--', e.g. -- -m fs -k random")
    run.set_defaults(func=_run)

    req = sub.add_parser("requirements", help="check this worker against CryoSPARC's hardware requirements and "
                         "Live readiness (pytest --cryobench -m requirements)")
    add_to_argparse(req, prefix="--")
    req.add_argument("pytest_args", nargs=argparse.REMAINDER, help="further pytest arguments after '--'")
    req.set_defaults(func=_run, marker="requirements")

    save = sub.add_parser("save-reference", help="make a reference file from a run's result files")
    save.add_argument("results", nargs="+", help="result file(s) of one run; the run's other groups come along")
    save.add_argument("--name", required=True, help="reference name (letters, digits, . _ -)")
    save.add_argument("--description", help="what machine this is, in words")
    where = save.add_mutually_exclusive_group()
    where.add_argument("--output", "-o", help="where to write (default NAME.json)")
    where.add_argument("--install", action="store_true",
                       help="write it to <data-dir>/references/NAME.json, where --cryobench-reference=NAME finds it")
    save.add_argument("--data-dir", dest="data_dir", help="where generated data and your own references live")
    save.add_argument("--anonymize", action="store_true", help="strip host names, bus ids and paths")
    save.add_argument("--force", action="store_true", help="replace an existing file")
    save.set_defaults(func=_save_reference)

    val = sub.add_parser("validate", help="check result and reference files against their schemas")
    val.add_argument("files", nargs="+")
    val.set_defaults(func=_validate)

    anon = sub.add_parser("anonymize", help="strip host names, bus ids and paths from result files")
    anon.add_argument("files", nargs="+")
    anon.add_argument("--in-place", action="store_true", help="overwrite the files instead of writing *.anon.json")
    anon.set_defaults(func=_anonymize)

    comp = sub.add_parser("compare", help="runs and references side by side: Time, Pct and Speedup per test",
                          description="One column per run or reference: Time, Pct (share of the column's "
                                      "total) and Speedup (reference time / time) per test. Exit status 1 when "
                                      "a test is slower than the reference beyond the tolerance.")
    _add_column_arguments(comp)
    comp.add_argument("--detail", action="store_true", help="expand each test's sub-timings with their tags")
    comp.add_argument("--only-changed", action="store_true",
                      help="only tests that are slower or faster than the reference, or whose checks failed")
    comp.set_defaults(func=_compare)

    rep = sub.add_parser("report", help="a self-contained HTML page with charts of runs and references")
    _add_column_arguments(rep)
    rep.add_argument("--html", required=True, metavar="OUT.html", help="where to write the page")
    rep.add_argument("--title", default="pytest-cryobench report", help="the page's title")
    rep.add_argument("--force", action="store_true", help="replace an existing OUT.html")
    rep.add_argument("--only-changed", action="store_true",
                     help="only tests that are slower or faster than the reference, or whose checks failed")
    rep.set_defaults(func=_report)

    refs = sub.add_parser("references", help="list the shipped references and your own")
    refs.add_argument("--data-dir", dest="data_dir", help="where generated data and your own references live")
    refs.set_defaults(func=_references)

    imp = sub.add_parser("import-cryosparc", help="turn CryoSPARC Benchmark JSON into a reference file")
    imp.add_argument("files", nargs="+", metavar="FILE.json", help="one file per group (fs, cpu, gpu) of one run")
    imp.add_argument("--name", help="reference name (default cryosparc-<first file's name>)")
    imp.add_argument("--description", help="what machine this is, in words")
    imp.add_argument("--device", default="gpu0", help="the GPU label of the GPU tests here (default gpu0)")
    imp.add_argument("--output", "-o", help="where to write (default NAME.json)")
    imp.add_argument("--force", action="store_true", help="replace an existing file")
    imp.set_defaults(func=_import_cryosparc)

    from pytest_cryobench.cli.data import add_data_parser

    add_data_parser(sub)

    from pytest_cryobench.fleet.cli import add_fleet_parser

    add_fleet_parser(sub, _tolerance_arg)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv[1:]  # after the subcommand: recorded in files that say how they were made
    try:
        return args.func(args)
    except BrokenPipeError:  # `cryobench compare ... | head`
        sys.stderr.close()
        return 1


if __name__ == "__main__":
    sys.exit(main())
