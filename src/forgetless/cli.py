"""The `forgetless` command line: parse arguments, load the config, call one function per command.

Bad input (`UserError`) prints one line and exits with code 2; other errors exit with code 1, with a
traceback only under `--debug`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from forgetless import __version__
from forgetless.errors import UserError

app = typer.Typer(
    name="forgetless",
    help="Continual pretraining of causal LMs, with a ledger of what was learned and forgotten.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="The bundled corpora, tokenizer and question sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

_DEBUG = {"on": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"forgetless {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for every error.")] = False,
) -> None:
    _DEBUG["on"] = debug


ConfigArg = Annotated[Path, typer.Argument(help="The run config (YAML).", show_default=False)]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a config key, e.g. --set train.seed=1 (repeatable)."),
]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `forgetless` script."""
    try:
        app(args=argv, standalone_mode=False)
    except UserError as err:
        if _DEBUG["on"]:
            raise
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - the last line of defence for internal errors
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(2)
        if _DEBUG["on"]:
            raise
        typer.echo(f"internal error: {type(err).__name__}: {err} (rerun with --debug for a traceback)", err=True)
        sys.exit(1)


# ---------------------------------------------------------------------------------------------
# train


@app.command()
def train(
    config: ConfigArg,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Run directory (default: output.dir of the config).")
    ] = None,
    set_: SetOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in the output dir from its latest checkpoint.")
    ] = False,
    allow_pickle: Annotated[
        bool, typer.Option("--allow-pickle", help="Allow loading model weights stored with pickle (.bin).")
    ] = False,
    trust_remote_code: Annotated[
        bool, typer.Option("--trust-remote-code", help="Allow model code shipped inside the model dir.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
) -> None:
    """Run every stage of CONFIG: train, evaluate, checkpoint, and write the run directory.

    The run directory gets config.yaml, metrics.jsonl, summary.json, checkpoints/ and final/ (a
    standard Hugging Face model). An existing run is never overwritten: pass --resume to continue
    it from its latest checkpoint.
    """
    from forgetless.config import load_config
    from forgetless.train.run import run_training

    overrides = list(set_ or [])
    if out is not None:
        overrides.append(f"output.dir={out.resolve()}")
    if allow_pickle:
        overrides.append("model.allow_pickle=true")
    if trust_remote_code:
        overrides.append("model.trust_remote_code=true")
    run_config = load_config(config, overrides)
    run_dir = run_training(run_config, resume=resume, quiet=quiet)
    _print_run_result(run_dir)


def _print_run_result(run_dir: Path) -> None:
    import json

    summary = json.loads((run_dir / "summary.json").read_text())
    typer.echo(f"run directory: {run_dir}")
    for name, value in (summary.get("learning") or {}).items():
        typer.echo(f"  learned   {name}: held-out loss {-value:+.4f} nats/token vs base")
    for name, value in (summary.get("forgetting") or {}).items():
        typer.echo(f"  forgotten {name}: held-out loss {value:+.4f} nats/token vs base")


# ---------------------------------------------------------------------------------------------
# demo


@app.command()
def demo(
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Output folder (default: runs/demo-<date>-<time>).")
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A smaller, faster demo (about a minute).")] = False,
    base: Annotated[
        Optional[Path],
        typer.Option("--base", help="Continue this HF model dir (with its own tokenizer) instead of building a base."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
) -> None:
    """The embedded default: pretrain a small base on bundled general text (cached), continue it on
    bundled security text with no replay, 5% and 25% replay, and print what was learned and forgotten.

    Writes a run directory per strategy, a combined summary.json and report.html.
    """
    from forgetless.demo import run_demo

    run_demo(out, quick=quick, base=base, quiet=quiet)
