"""``cryobench data generate|verify``: provision the synthetic data set of a profile, and check
generated or real data the way a run reads it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def data_dir(args: argparse.Namespace) -> Path:
    import os

    from pytest_cryobench.plugin.settings import default_data_dir

    return Path(args.data_dir).expanduser() if args.data_dir else default_data_dir(os.environ)


def _cli_progress(label: str):
    """Progress on stderr for the CLI (the plugin's version goes around pytest's capture)."""
    from pytest_cryobench.measure.progress import progress

    return progress(None, label)


def _data_generate(args: argparse.Namespace) -> int:
    from pytest_cryobench.data import provision
    from pytest_cryobench.data.movies import FORMATS, movie_component
    from pytest_cryobench.errors import CryobenchError
    from pytest_cryobench.plugin.session import DATA_SEED
    from pytest_cryobench.profiles import get_profile

    profile = get_profile(args.profile)
    root = provision.data_root(data_dir(args), profile.name)
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
    from pytest_cryobench.data import provision
    from pytest_cryobench.data.verify import generated_data_report, generated_profiles, real_data_problems

    if args.data:
        problems = real_data_problems(Path(args.data))
        for problem in problems:
            print(problem)
        print(f"{args.data}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    directory = data_dir(args)
    profiles = [args.profile] if args.profile else generated_profiles(directory)
    if not profiles:
        print(f"{directory}: no generated data (no synthetic-<profile> dir); run 'cryobench data generate'")
        return 1
    bad = 0
    for profile in profiles:
        root = provision.data_root(directory, profile)
        report = generated_data_report(root)
        for problem in report.problems:
            print(problem)
        print(f"{root}: {report.checked} file(s) checked, "
              f"{'OK' if report.ok else f'{len(report.problems)} problem(s)'}")
        bad += not report.ok
    return 1 if bad else 0


def add_data_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``cryobench data`` and its two subcommands."""
    data = sub.add_parser("data", help="generate or verify benchmark data")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    gen = data_sub.add_parser("generate", help="generate the synthetic data set of a profile (with progress)")
    gen.add_argument("--profile", choices=("smoke", "standard", "full"), default="standard")
    gen.add_argument("--data-dir", "--dir", dest="data_dir", help="where generated data lives")
    gen.add_argument("--only", help="comma-separated kinds to generate (tiff,mrc,eer)")
    gen.set_defaults(func=_data_generate)
    ver = data_sub.add_parser("verify", help="check generated data against its manifest (exit 1 on problems)")
    ver.add_argument("--profile", choices=("smoke", "standard", "full"),
                     help="the profile to check (default: every profile generated in the data dir)")
    ver.add_argument("--data-dir", "--dir", dest="data_dir", help="where generated data lives")
    ver.add_argument("--data", help="check a real CryoSPARC data set's layout and files instead")
    ver.set_defaults(func=_data_verify)
