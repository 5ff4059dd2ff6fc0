"""The ``cryobench`` console script.

``cryobench run``
    runs the benchmark (``pytest --cryobench``) with the same options as the plugin, written
    without their prefix (``--profile smoke`` is ``--cryobench-profile smoke``);
``cryobench save-reference``
    turns a run's result files into a reference file;
``cryobench validate``
    checks result and reference files against their schemas (exit status 0 when all are valid);
``cryobench anonymize``
    strips host names, bus ids and paths from result files;
``cryobench data generate`` / ``cryobench data verify``
    pre-provisions the synthetic data set, or checks one (or a real data set) file by file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from .options import OPTIONS, add_to_argparse


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
    return subprocess.call([sys.executable, "-m", "pytest", *argv, *extra])


def _save_reference(args: argparse.Namespace) -> int:
    from .errors import CryobenchError
    from .references import load_result, make_reference, sibling_result_files

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
    if args.anonymize:
        from .anonymize import anonymize_document

        ref = anonymize_document(ref)
    out = Path(args.output) if args.output else Path(f"{args.name}.json")
    if out.exists() and not args.force:
        print(f"cryobench save-reference: {out} exists; use --force to replace it", file=sys.stderr)
        return 2
    from .fsutil import atomic_write

    with atomic_write(out) as handle:
        json.dump(ref, handle, indent=2)
        handle.write("\n")
    groups = ", ".join(sorted(ref["tests"]))
    print(f"wrote reference {ref['name']!r} ({ref['profile']} profile, {ref['backend']} backend; "
          f"groups {groups}) to {out}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from .errors import CryobenchError
    from .references import comparison_from_reference, load_result, read_json

    bad = 0
    for given in args.files:
        path = Path(given)
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
    from .anonymize import anonymize_document
    from .errors import CryobenchError
    from .fsutil import atomic_write
    from .references import read_json

    for given in args.files:
        path = Path(given)
        try:
            doc = read_json(path, "file")
        except CryobenchError as exc:
            print(f"cryobench anonymize: {exc}", file=sys.stderr)
            return 2
        out = path.with_name(path.stem + ".anon" + path.suffix) if not args.in_place else path
        with atomic_write(out) as handle:
            json.dump(anonymize_document(doc), handle, indent=2)
            handle.write("\n")
        print(f"wrote {out}")
    return 0


def _data_dir(args: argparse.Namespace) -> Path:
    import os

    from .settings import default_data_dir

    return Path(args.data_dir).expanduser() if args.data_dir else default_data_dir(os.environ)


def _cli_progress(label: str):
    """Progress on stderr for the CLI (the plugin's version goes around pytest's capture)."""
    from .progress import progress

    return progress(None, label)


def _data_generate(args: argparse.Namespace) -> int:
    from .data import provision
    from .data.movies import FORMATS, movie_component
    from .errors import CryobenchError
    from .profiles import get_profile
    from .session import DATA_SEED

    profile = get_profile(args.profile)
    root = provision.data_root(_data_dir(args), profile.name)
    only = [f.strip() for f in args.only.split(",")] if args.only else list(FORMATS)
    unknown = [f for f in only if f not in FORMATS]
    if unknown:
        print(f"cryobench data generate: unknown kind(s) {unknown}; known: {', '.join(FORMATS)}",
              file=sys.stderr)
        return 2
    try:
        for fmt in only:
            provision.ensure(root, movie_component(fmt, profile, DATA_SEED), DATA_SEED,
                             progress_for=_cli_progress, say=provision.stderr_say)
    except CryobenchError as exc:
        print(f"cryobench data generate: {exc}", file=sys.stderr)
        return 2
    print(f"data for the {profile.name} profile is ready in {root}")
    return 0


def _data_verify(args: argparse.Namespace) -> int:
    from .data import layout, provision
    from .data.movies import CHECKS

    if args.data:
        problems = layout.validate(Path(args.data))
        for problem in problems:
            print(problem)
        print(f"{args.data}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    root = provision.data_root(_data_dir(args), args.profile)
    readers = {f"movies/{fmt}": check for fmt, check in CHECKS.items()}
    report = provision.verify(root, readers)
    for problem in report.problems:
        print(problem)
    print(f"{root}: {report.checked} file(s) checked, "
          f"{'OK' if report.ok else f'{len(report.problems)} problem(s)'}")
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="cryobench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"pytest-cryobench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the benchmark (pytest --cryobench)")
    add_to_argparse(run, prefix="--")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER,
                     help="further pytest arguments after '--', e.g. -- -m fs -k random")
    run.set_defaults(func=_run)

    save = sub.add_parser("save-reference", help="make a reference file from a run's result files")
    save.add_argument("results", nargs="+", help="result file(s) of one run; the run's other groups come along")
    save.add_argument("--name", required=True, help="reference name (letters, digits, . _ -)")
    save.add_argument("--description", help="what machine this is, in words")
    save.add_argument("--output", "-o", help="where to write (default NAME.json)")
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

    data = sub.add_parser("data", help="generate or verify benchmark data")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    gen = data_sub.add_parser("generate", help="generate the synthetic data set of a profile (with progress)")
    gen.add_argument("--profile", choices=("smoke", "standard", "full"), default="standard")
    gen.add_argument("--data-dir", "--dir", dest="data_dir", help="where generated data lives")
    gen.add_argument("--only", help="comma-separated kinds to generate (tiff,mrc,eer)")
    gen.set_defaults(func=_data_generate)
    ver = data_sub.add_parser("verify", help="check generated data against its manifest (exit 1 on problems)")
    ver.add_argument("--profile", choices=("smoke", "standard", "full"), default="standard")
    ver.add_argument("--data-dir", "--dir", dest="data_dir", help="where generated data lives")
    ver.add_argument("--data", help="check a real CryoSPARC data set's layout and files instead")
    ver.set_defaults(func=_data_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
