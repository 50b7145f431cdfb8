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
