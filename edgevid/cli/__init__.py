"""`edgevid` command line: flags -> configs -> the library functions. Kept thin on purpose.

Heavy imports (torch, models) happen inside the commands, so `edgevid --help` is instant.
Every user error is one line on stderr and a non-zero exit, and no partial output file.

One module per command group, in the order of the data flow, each parser beside its `cmd_*`:

    dataset.py    the training data -> a preview grid               dataset preview
    train.py      data -> VAE, text-to-video, image-to-video model  train vae | t2v | i2v
    distill.py    teacher -> few-step student                       distill
    compress.py   model -> faster model                             compress decoder | mobilevd
    generate.py   prompt -> video                                   generate
    animate.py    image -> video                                    animate
    eval.py       model -> ShapesBench scores; two scores -> paired   eval, compare
    bench.py      model -> speed on this machine                    compile, bench
    common.py     what they share: CLIError, the flags' limits and checks, threads, the training flags

`export`, `run-exported` and `search` live beside their code: edgevid/export/cli.py, edgevid/search/cli.py.
"""
from __future__ import annotations

import argparse
import sys

from edgevid.cli.animate import add_animate_parser
from edgevid.cli.bench import add_bench_parser, add_compile_parser
from edgevid.cli.common import EXAMPLES, CLIError, _parse_buckets, check_work_resources
from edgevid.cli.compress import add_compress_parser
from edgevid.cli.dataset import add_dataset_parser
from edgevid.cli.distill import add_distill_parser
from edgevid.cli.eval import add_compare_parser, add_eval_parser, check_eval_resources
from edgevid.cli.generate import (add_generate_parser, check_generate_args, check_generate_resources,
                                  resolve_generate_args)
from edgevid.cli.train import add_train_parser

# The checks callers (and the tests) run without a command; _parse_buckets for tests/_train_estimate_probe.py.
__all__ = ["main", "build_parser", "CLIError", "EXAMPLES", "check_generate_args", "resolve_generate_args",
           "check_generate_resources", "check_eval_resources", "check_work_resources", "_parse_buckets"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("edgevid: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, OSError, FloatingPointError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"edgevid: error: {msg}", file=sys.stderr)
        return 1
    except MemoryError as e:  # an allocation the checks before it did not foresee: still one line
        print(f"edgevid: error: out of memory ({' '.join(str(e).split()) or 'MemoryError'}); "
              f"try a smaller size, fewer frames or --stream", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgevid", description="Fast text-to-video diffusion on CPUs and phones.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"edgevid {_version()}")
    sub = p.add_subparsers(metavar="COMMAND")

    add_generate_parser(sub)
    add_animate_parser(sub)
    add_train_parser(sub)
    add_distill_parser(sub)
    add_compress_parser(sub)
    add_compile_parser(sub)
    add_bench_parser(sub)
    add_eval_parser(sub)
    add_compare_parser(sub)
    add_dataset_parser(sub)

    from edgevid.export.cli import add_export_parser, add_run_exported_parser
    from edgevid.search.cli import add_search_parser

    add_export_parser(sub)
    add_run_exported_parser(sub)
    add_search_parser(sub)
    return p


def _version() -> str:
    from edgevid import __version__

    return __version__
