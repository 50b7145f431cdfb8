"""The `forgetless` command line: parse arguments, load the config, call one function per command.

Bad input (`UserError`) prints one line and exits with code 2; a run that stops early (`RunStopped`:
diverged, disk full, out of memory, or preempted by a signal) prints one line and exits with its own
code (1, or 128 + the signal); Ctrl-C during any command prints one line and exits with 130; other
errors exit with code 1, with a traceback only under `--debug`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from forgetless import __version__
from forgetless.errors import Preempted, RunStopped, UserError

app = typer.Typer(
    name="forgetless",
    help="Continual pretraining of causal LMs, with a ledger of what was learned and forgotten.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="The bundled corpora, tokenizer and question sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("list")
def data_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
) -> None:
    """List the bundled corpora, tokenizer and question sets with their sizes and licenses."""
    from forgetless.data.bundled.listing import listing_json, print_listing

    if as_json:
        typer.echo(listing_json())
    else:
        print_listing()


_DEBUG = {"on": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"forgetless {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for every error.")] = False,
) -> None:
    _DEBUG["on"] = debug


ConfigArg = Annotated[Path, typer.Argument(help="The run config (YAML).", show_default=False)]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress display.")]
JsonProgressOpt = Annotated[
    bool,
    typer.Option(
        "--json-progress",
        help="Progress as JSON objects on stdout, one per line (for schedulers and CI); the result is the last line.",
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set train.seed=1 (repeatable)."),
]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `forgetless` script (`argv` None: the process's own arguments)."""
    as_script = argv is None
    try:
        # Outside standalone mode typer hands back what would have been the exit code, and turns a
        # KeyboardInterrupt into the code 130, instead of exiting.
        with _warnings_as_lines():
            code = app(args=argv, standalone_mode=False)
    except UserError as err:
        if _DEBUG["on"]:
            raise
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except Preempted as err:
        if _DEBUG["on"]:
            raise
        _exit_stopped(str(err), err.exit_code, as_script)
    except RunStopped as err:
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
        _exit_stopped(_INTERRUPTED, 128 + signal.SIGINT, as_script)
    except Exception as err:  # noqa: BLE001 - the last line of defence for internal errors
        if _is_usage_error(err):  # an unknown option, a missing argument: usage and exit 2
            err.show()
            sys.exit(2)
        if _DEBUG["on"]:
            raise
        typer.echo(
            f"internal error: {type(err).__name__}: {err} "
            "(rerun as `forgetless --debug COMMAND ...` for a traceback)",
            err=True,
        )
        sys.exit(1)
    if isinstance(code, int) and code == 128 + signal.SIGINT:
        _exit_stopped(_INTERRUPTED, code, as_script)
    if isinstance(code, int) and code != 0:
        sys.exit(code)


def _exit_stopped(line: str, code: int, as_script: bool) -> NoReturn:
    """Exit after a signal stopped the command. A process on its way out ignores a further Ctrl-C,
    which would otherwise print a traceback from whatever runs at exit."""
    if as_script and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    typer.echo(line, err=True)
    sys.exit(code)


_INTERRUPTED = "stopped by SIGINT (Ctrl-C) before the command finished"


@contextlib.contextmanager
def _interrupted(message: str) -> Iterator[None]:
    """Turn Ctrl-C inside the block into `Preempted` (exit code 130) with `message` as its one line."""
    try:
        yield
    except KeyboardInterrupt:
        raise Preempted(f"stopped by SIGINT (Ctrl-C) {message}", signal.SIGINT) from None


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Warnings (a source read too often, a sequence beyond the trained positions) as one line each."""

    def show(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
        typer.echo(f"warning: {message}", err=True)

    saved = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = saved


def _is_usage_error(err: Exception) -> bool:
    """A command-line usage error, from click or from the copy of click that typer carries."""
    import click

    return isinstance(err, click.ClickException) or (
        isinstance(err, typer.TyperException) and callable(getattr(err, "show", None))
    )


# ---------------------------------------------------------------------------------------------
# train


@app.command()
def train(
    config: ConfigArg,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run directory (default: output.dir of the config).")
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
    quiet: QuietOpt = False,
    json_progress: JsonProgressOpt = False,
) -> None:
    """Run every stage of CONFIG: train, evaluate, checkpoint, and write the run directory.

    The run directory gets config.yaml, metrics.jsonl, summary.json, checkpoints/ and final/ (a
    standard Hugging Face model). An existing run is never overwritten: pass --resume to continue
    it from its latest checkpoint.
    """
    from forgetless.config import load_config
    from forgetless.demo import resolve_demo_base
    from forgetless.train.host_memory import keep_freed_memory
    from forgetless.train.run import run_training

    overrides = list(set_ or [])
    if out is not None:
        overrides.append(f"output.dir={out.resolve()}")
    if allow_pickle:
        overrides.append("model.allow_pickle=true")
    if trust_remote_code:
        overrides.append("model.trust_remote_code=true")
    run_config = resolve_demo_base(load_config(config, overrides), quiet=quiet)
    keep_freed_memory()  # glibc: reuse freed host memory rather than page-faulting fresh memory each step

    def again(*extra: str) -> str:
        import shlex

        words = ["forgetless", "train", str(config), *[w for item in set_ or [] for w in ("--set", item)]]
        words += ["--out", str(out)] if out is not None else []
        words += ["--allow-pickle"] if allow_pickle else []
        words += ["--trust-remote-code"] if trust_remote_code else []
        return shlex.join([*words, *extra])

    try:
        run_dir = run_training(run_config, resume=resume, quiet=quiet, progress=_progress(json_progress))
    except Preempted as stop:
        raise Preempted(f"{stop}; resume with: {again('--resume')}", stop.signum) from None
    except KeyboardInterrupt:  # a second Ctrl-C stops at once, or the first one before the loop runs
        raise Preempted(_interrupted_run(Path(run_config.output.dir), again), signal.SIGINT) from None
    _print_run_result(run_dir, as_json=json_progress and not quiet)


def _interrupted_run(run_dir: Path, again: Callable[..., str]) -> str:
    from forgetless.train.checkpoint import latest_checkpoint

    latest = latest_checkpoint(run_dir)
    if latest is not None:
        return (
            f"stopped by SIGINT (Ctrl-C) at once, without a checkpoint; the latest checkpoint {latest} is "
            f"intact; resume with: {again('--resume')}"
        )
    if (run_dir / "metrics.jsonl").exists():
        return f"stopped by SIGINT (Ctrl-C) before the first checkpoint; start over with: {again('--resume')}"
    return f"stopped by SIGINT (Ctrl-C) before training started; run again with: {again()}"


def _progress(json_progress: bool) -> str:
    return "json" if json_progress else "auto"


def _print_run_result(run_dir: Path, *, as_json: bool = False) -> None:
    import json

    summary = json.loads((run_dir / "summary.json").read_text())
    if as_json:
        from forgetless.console import write_json_line

        write_json_line(
            {
                "kind": "result",
                "run_dir": str(run_dir),
                "learning": summary.get("learning") or {},
                "forgetting": summary.get("forgetting") or {},
            }
        )
        return
    typer.echo(f"run directory: {run_dir}")
    floor = summary.get("change_floor")
    in_bpb = summary.get("units") == "bpb"  # the tokenizer changed: bits per byte against the base's own
    for name, source in (summary.get("sources") or {}).items():
        delta = source.get("delta_bpb_reference") if in_bpb else source.get("delta")
        if delta is None or source.get("change") is None:
            continue
        if in_bpb:
            typer.echo(f"  {source['change']:<9} {name}: {delta:+.4f} bits/byte vs the base with its own tokenizer")
            continue
        note = f" (under the {floor:g}-nat floor)" if source["change"] == "unchanged" and floor else ""
        typer.echo(f"  {source['change']:<9} {name}: held-out loss {delta:+.4f} vs base{note}")


# ---------------------------------------------------------------------------------------------
# demo


@app.command()
def demo(
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: runs/demo-<date>-<time>).")
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A smaller, faster demo (about a minute).")] = False,
    base: Annotated[
        Path | None,
        typer.Option(
            "--base", help="Continue this HF model dir (with its own tokenizer) instead of building a base."
        ),
    ] = None,
    quiet: QuietOpt = False,
    json_progress: JsonProgressOpt = False,
) -> None:
    """The embedded default: continue a small base on bundled security text three ways, show the ledger.

    Pretrains a small base on bundled general text (cached), continues it on bundled security text
    with no replay, 5% and 25% replay of general, evaluates held-out loss and both question sets,
    prints what was learned and forgotten, and writes a run directory per strategy, a combined
    summary.json and report.html.
    """
    from forgetless.demo import run_demo
    from forgetless.train.host_memory import keep_freed_memory

    keep_freed_memory()  # glibc: reuse freed host memory rather than page-faulting fresh memory each step
    run_demo(out, quick=quick, base=base, quiet=quiet, progress=_progress(json_progress))


# ---------------------------------------------------------------------------------------------
# eval


@app.command("eval")
def eval_(
    model_dir: Annotated[Path, typer.Argument(help="A Hugging Face model directory.", show_default=False)],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="A run config: evaluate its eval.sources held-out splits and eval.mcq sets."
        ),
    ] = None,
    set_: SetOpt = None,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="NAME=PATH: evaluate every document of a file or folder (repeatable)."),
    ] = None,
    mcq: Annotated[
        list[str] | None,
        typer.Option("--mcq", help="A question set: a .jsonl(.gz) file or bundled:<set> (repeatable)."),
    ] = None,
    seq_len: Annotated[
        int | None,
        typer.Option(
            "--seq-len", min=2, help="Tokens per evaluation window (default: train.seq_len or 1024)."
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-tokens", min=1, help="Tokens per source (default: eval.max_tokens; all of a --source)."
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", min=1, help="Windows per forward pass (default: eval.batch_size, else sized automatically)."
        ),
    ] = None,
    mcq_limit: Annotated[
        int | None, typer.Option("--mcq-limit", min=1, help="Score only the first N questions of each set.")
    ] = None,
    mcq_template: Annotated[
        str,
        typer.Option(
            "--mcq-template",
            help="Prompt template; fields come from the question record.",
            show_default=r"{question}\nAnswer:",
        ),
    ] = "{question}\nAnswer:",
    mcq_few_shot: Annotated[
        int,
        typer.Option("--mcq-few-shot", min=0, help="Solved examples from the same set before each question."),
    ] = 0,
    lm_eval: Annotated[
        str | None,
        typer.Option(
            "--lm-eval", help="lm-evaluation-harness tasks, comma-separated (needs the lm-eval extra)."
        ),
    ] = None,
    lm_eval_include: Annotated[
        Path | None, typer.Option("--lm-eval-include", help="A folder of local lm-eval task YAML files.")
    ] = None,
    lm_eval_limit: Annotated[
        int | None,
        typer.Option("--lm-eval-limit", min=1, help="Evaluate only the first N documents of each task."),
    ] = None,
    tokenizer: Annotated[
        str | None, typer.Option("--tokenizer", help="Tokenizer directory (default: the model's own).")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu or cuda (default: train.device or auto).")
    ] = None,
    precision: Annotated[
        str | None, typer.Option("--precision", help="auto, bf16 or fp32 (auto: bf16 on GPU, fp32 on CPU).")
    ] = None,
    allow_pickle: Annotated[
        bool, typer.Option("--allow-pickle", help="Allow loading model weights stored with pickle (.bin).")
    ] = False,
    trust_remote_code: Annotated[
        bool, typer.Option("--trust-remote-code", help="Allow model code shipped inside the model dir.")
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the results to this JSON file.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines while preparing data.")] = False,
) -> None:
    """Evaluate any Hugging Face model directory: held-out loss, perplexity and bits per byte per
    source, multiple-choice accuracy per question set, and lm-evaluation-harness tasks.

    With --config, the config's held-out splits are evaluated exactly as its run evaluates them, so
    the final model of a run gives back the run's final held-out losses.
    """
    from forgetless.config import load_config
    from forgetless.evaluate.model_eval import (
        EvalOptions,
        evaluate_model,
        parse_source_args,
        print_results,
        write_results,
    )

    options = EvalOptions(
        sources=parse_source_args(list(source or [])),
        mcq=list(mcq or []),
        seq_len=seq_len,
        max_tokens=max_tokens,
        batch_size=batch_size,
        mcq_limit=mcq_limit,
        mcq_template=mcq_template,
        mcq_few_shot=mcq_few_shot,
        lm_eval_tasks=[task.strip() for task in (lm_eval or "").split(",") if task.strip()],
        lm_eval_include=str(lm_eval_include) if lm_eval_include is not None else None,
        lm_eval_limit=lm_eval_limit,
        tokenizer=tokenizer,
        device=device,
        precision=precision,
        allow_pickle=allow_pickle,
        trust_remote_code=trust_remote_code,
        progress=not quiet,
    )
    if set_ and config is None:
        raise UserError("--set needs --config")
    run_config = load_config(config, list(set_ or [])) if config is not None else None
    with _interrupted("before the evaluation finished; no results were written"):
        results = evaluate_model(model_dir, options, config=run_config)
    print_results(results)
    if json_out is not None:
        write_results(results, json_out)
        typer.echo(f"results written to {json_out}")


# ---------------------------------------------------------------------------------------------
# report and compare

RunDirsArg = Annotated[
    list[Path],
    typer.Argument(help="Run directories (each holds metrics.jsonl).", metavar="RUN_DIR", show_default=False),
]


@app.command()
def report(
    run_dirs: RunDirsArg,
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path("report.html"),
    name: Annotated[
        list[str] | None,
        typer.Option(
            "--name", help="Display name of each run, in order (repeatable; default: folder names)."
        ),
    ] = None,
    title: Annotated[str, typer.Option("--title", help="Page title.")] = "forgetless report",
) -> None:
    """Write one self-contained HTML page comparing RUN_DIRS: loss curves per source, LR schedule,
    learning-vs-forgetting scatter with the Pareto front, and the ledger tables.
    """
    from forgetless.report.html import write_report
    from forgetless.report.runs import with_branches

    dirs, names = with_branches(list(run_dirs), list(name) if name else None)
    path = write_report(dirs, out, names=names, title=title)
    typer.echo(f"report: {path}")


@app.command()
def card(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.", show_default=False)],
) -> None:
    """Write RUN_DIR/final/README.md, the model card: Hugging Face metadata (base model, datasets,
    license, tags), the data, stages and methods, the ledger with MCQ standard errors, the cost and
    the command that reproduces the run. Training writes it too; this regenerates it."""
    from forgetless.train.model_card import write_card

    typer.echo(f"model card: {write_card(run_dir)}")


@app.command()
def compare(run_dirs: RunDirsArg) -> None:
    """Print one row per run: learning per target, forgetting per retained source, worst stability
    gap, MCQ accuracy change, tokens and tokens per second (recomputed from metrics.jsonl).
    """
    from rich.console import Console

    from forgetless.report.compare import compare_table
    from forgetless.report.runs import with_branches

    console = Console()
    if not console.is_terminal:  # piped or redirected: do not squeeze the table into 80 columns
        console = Console(width=200)
    console.print(compare_table(*with_branches(list(run_dirs))))


# ---------------------------------------------------------------------------------------------
# init and recipes: starting a config


@app.command()
def init(
    model: Annotated[Path, typer.Option("--model", help="The base model: a Hugging Face model dir.")],
    data: Annotated[
        str, typer.Option("--data", help="The new text: a file, folder or glob (any format prepare reads).")
    ],
    replay: Annotated[
        str | None,
        typer.Option("--replay", help="General text to replay: bundled:general or a file, folder or glob."),
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option("--recipe", help="Take the stage's methods from this recipe (forgetless recipes)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress while tokenizing.")] = False,
) -> None:
    """Print a commented starter config for MODEL continued on DATA, sized from both:

    forgetless init --model ./base --data data/law/ --replay bundled:general > my-run.yaml

    The data is tokenized with the model's tokenizer (into the cache that train reuses) to measure
    it; the stage is one epoch over it, the batch and schedule follow the model's size, and the
    evaluation cadence keeps evaluation near 5% of the run. `forgetless train` accepts the output as is.
    """
    from forgetless.starter import starter_config

    typer.echo(
        starter_config(model, data, replay=replay, recipe=recipe, progress="quiet" if quiet else "auto")
    )


@app.command()
def recipes(
    name: Annotated[str | None, typer.Argument(help="Print this recipe's YAML.", show_default=False)] = None,
) -> None:
    """List the ready configs installed with forgetless, or print one:

    forgetless recipes mer > mer.yaml && forgetless train mer.yaml --set model.path=./base
    """
    from forgetless.recipes import recipe_names, recipe_path, recipe_summary

    if name is not None:
        typer.echo(recipe_path(name).read_text(encoding="utf-8"), nl=False)
        return
    width = max(len(n) for n in recipe_names())
    for recipe_name in recipe_names():
        typer.echo(f"{recipe_name:<{width}}  {recipe_summary(recipe_name)}")
    typer.echo("print one with: forgetless recipes NAME > my-run.yaml")


# ---------------------------------------------------------------------------------------------
# prepare


@app.command()
def prepare(
    config: ConfigArg,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
    json_progress: JsonProgressOpt = False,
) -> None:
    """Tokenize every source of CONFIG once into the cache (memory-mapped shards + held-out split).

    A second run with unchanged files and tokenizer does nothing; a changed file re-tokenizes only
    itself. `train` runs this itself when needed.
    """
    from rich.console import Console
    from rich.table import Table

    from forgetless.config import load_config
    from forgetless.data.prepare import default_cache_dir, prepare_sources
    from forgetless.data.subset import apply_subsets, refuse_model_scores
    from forgetless.demo import resolve_demo_base
    from forgetless.model.load import load_tokenizer

    run_config = load_config(config, list(set_ or []))
    refuse_model_scores(run_config, "forgetless prepare")
    run_config = resolve_demo_base(run_config, quiet=quiet)
    tokenizer = load_tokenizer(
        run_config.tokenizer or run_config.model.path, trust_remote_code=run_config.model.trust_remote_code
    )
    with _interrupted("while preparing data; finished files stay in the cache; run prepare again to finish"):
        prepared = prepare_sources(
            run_config, tokenizer, progress="quiet" if quiet else _progress(json_progress)
        )
        subsets = apply_subsets(run_config, prepared)  # scored by length or a field: no model needed
    if json_progress:
        from forgetless.console import write_json_line

        for name, source in prepared.items():
            write_json_line(
                {
                    "kind": "result",
                    "source": name,
                    "cached": source.cached,
                    "train": source.meta["train"],
                    "heldout": source.meta["heldout"],
                }
            )
        return
    table = Table(title=f"sources (cache: {default_cache_dir(run_config)})", title_justify="left")
    for column in (
        "source",
        "status",
        "train docs",
        "train tokens",
        "held-out docs",
        "held-out tokens",
        "notes",
    ):
        table.add_column(column, justify="right" if "docs" in column or "tokens" in column else "left")
    for name, source in prepared.items():
        meta = source.meta
        read = meta.get("read", {})
        notes = [
            f"{read[k]:,} {k.replace('_', ' ')}"
            for k in ("skipped_records", "empty_documents", "invalid_utf8")
            if read.get(k)
        ]
        if subsets[name].train is not source.train:
            kept = subsets[name].train
            notes.append(f"subset: {kept.num_documents:,} docs, {kept.num_tokens:,} tokens")
        table.add_row(
            name,
            "up to date" if source.cached else "prepared",
            f"{meta['train']['documents']:,}",
            f"{meta['train']['tokens']:,}",
            f"{meta['heldout']['documents']:,}",
            f"{meta['heldout']['tokens']:,}",
            "; ".join(notes),
        )
    console = Console() if Console().is_terminal else Console(width=200)
    console.print(table)
    if all(source.cached for source in prepared.values()):
        typer.echo("nothing to do: every source is up to date")


# ---------------------------------------------------------------------------------------------
# merge, average, residual: operations on trained weights (forgetless.weights)


@app.command()
def merge(
    base: Annotated[Path, typer.Argument(help="The base model (HF dir).", show_default=False)],
    cpt: Annotated[
        Path, typer.Argument(help="The continued model (HF dir), e.g. RUN_DIR/final.", show_default=False)
    ],
    out: Annotated[
        Path,
        typer.Option("--out", help="With --alpha: the merged model dir. With --sweep: the results folder."),
    ],
    alpha: Annotated[
        float | None, typer.Option("--alpha", min=0.0, max=1.0, help="Write (1 - A) * BASE + A * CPT.")
    ] = None,
    sweep: Annotated[
        str | None,
        typer.Option(
            "--sweep", help="Alphas, e.g. 0,0.25,0.5,0.75,1: evaluate each and mark the Pareto points."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The run config whose sources and MCQ sets --sweep evaluates (default: CPT/../config.yaml).",
        ),
    ] = None,
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines while preparing data.")] = False,
) -> None:
    """Interpolate the weights of BASE and CPT (same architecture): write one merged model with
    --alpha, or with --sweep evaluate each point on the run's held-out sources and question sets,
    print the learning-versus-forgetting table and write sweep.json and sweep.html to --out.
    """
    if (alpha is None) == (sweep is None):
        raise UserError("merge: give exactly one of --alpha A and --sweep A1,A2,...")
    if alpha is not None:
        from forgetless.weights.merge import merge_dirs

        path = merge_dirs(base, cpt, alpha, out)
        typer.echo(f"merged model ({1 - alpha:g} x base + {alpha:g} x CPT): {path}")
        return
    from forgetless.config import load_config
    from forgetless.weights.sweep import parse_alphas, print_sweep, write_sweep
    from forgetless.weights.sweep import sweep as run_sweep

    alphas = parse_alphas(sweep or "")
    if config is None:
        config = cpt.parent / "config.yaml"
        if not config.is_file():
            raise UserError(f"merge --sweep: {config} not found; give the run's config with --config")
    result = run_sweep(base, cpt, alphas, load_config(config, list(set_ or [])), progress=not quiet)
    print_sweep(result)
    json_path, html_path = write_sweep(result, out)
    typer.echo(f"sweep: {json_path} and {html_path}")


@app.command()
def average(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with checkpoints.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="The averaged model dir to write.")],
    last: Annotated[int, typer.Option("--last", min=1, help="How many of the stage's last checkpoints.")] = 2,
    stage: Annotated[
        str | None, typer.Option("--stage", help="The stage (default: the last one with checkpoints).")
    ] = None,
) -> None:
    """Average the weights of the last checkpoints of a stage into a Hugging Face model directory
    (keep enough of them with output.keep_checkpoints)."""
    from forgetless.weights.average import average_checkpoints

    stage_name, folders = average_checkpoints(run_dir, last, stage, out)
    typer.echo(f"averaged {', '.join(f.name for f in folders)} of stage {stage_name}: {out}")


@app.command()
def residual(
    base: Annotated[Path, typer.Option("--base", help="The old base model (HF dir).")],
    instruct: Annotated[Path, typer.Option("--instruct", help="The old base's instruction-tuned model.")],
    onto: Annotated[Path, typer.Option("--onto", help="The new base, e.g. RUN_DIR/final.")],
    out: Annotated[Path, typer.Option("--out", help="The model dir to write.")],
) -> None:
    """Apply instruction residuals: write NEW_BASE + (INSTRUCT - BASE), the instruct model's
    vocabulary rows included (added tokens are zero rows in the models that lack them)."""
    from forgetless.weights.merge import residual_dirs

    path = residual_dirs(base, instruct, onto, out)
    typer.echo(f"new instruct model (onto + (instruct - base)): {path}")


# ---------------------------------------------------------------------------------------------
# plan: the replay ratio from proxy runs and a fitted law (forgetless.plan)


@app.command()
def plan(
    config: ConfigArg,
    stage: Annotated[str, typer.Option("--stage", help="The stage to plan (the config's first stage).")],
    tokens: Annotated[
        str,
        typer.Option(
            "--tokens", help="Tokens of each proxy run: a count, or a share of the stage such as 1/8."
        ),
    ],
    budget: Annotated[
        str,
        typer.Option(
            "--budget",
            help="Largest rise of each retained source's loss: nats/token (0.05) or a share of its base loss (2%).",
        ),
    ],
    ratios: Annotated[
        str, typer.Option("--ratios", help="Replay ratios of the proxy runs, at least three.")
    ] = "0,0.05,0.1,0.25,0.5",
    margin: Annotated[
        str | None,
        typer.Option(
            "--margin",
            help="Keep predictions this far below the budget: nats/token (0.01), or rmse (each fit's own error).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Plan folder (default: output.dir of the config + '-plan').")
    ] = None,
    retained: Annotated[
        list[str] | None,
        typer.Option(
            "--retained",
            help="A source the budget holds for (repeatable; default: every evaluated non-target).",
        ),
    ] = None,
    evals: Annotated[int, typer.Option("--evals", help="Evaluations along each proxy run.")] = 8,
    apply: Annotated[
        bool,
        typer.Option("--apply", help="Write CONFIG.planned.yaml beside CONFIG with the ratio filled in."),
    ] = False,
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
) -> None:
    """Recommend a replay ratio before spending: run short proxy runs of STAGE at each ratio, fit the
    critical-mixture-ratio law L(R) = a R^s + b per source, and pick the least replay that keeps every
    retained source's loss rise within BUDGET. Writes plan.json and plan.html; proxy runs that finished
    are reused, so an interrupted plan resumes.
    """
    from forgetless.config import load_config
    from forgetless.plan.planner import make_plan
    from forgetless.plan.proxy import parse_ratios, parse_tokens, plan_setup
    from forgetless.plan.recommend import parse_budget, parse_margin
    from forgetless.train.progress import ProgressDisplay

    run_config = load_config(config, list(set_ or []))
    budget_value = dataclasses.replace(parse_budget(budget), margin=parse_margin(margin))
    setup = plan_setup(
        run_config, stage, parse_ratios(ratios), parse_tokens(tokens, run_config, stage), retained, evals
    )
    out = out if out is not None else Path(f"{run_config.output.dir}-plan")
    progress = None if quiet else ProgressDisplay().message
    result = make_plan(
        run_config, setup, budget_value, out, config_path=config, apply=apply, quiet=quiet, progress=progress
    )
    rec = result["recommendation"]
    typer.echo(
        f"recommended replay ratio for stage {stage}: {rec['replay_ratio']:g} ({result['budget']['text']})"
    )
    for name, value in rec["predicted_delta"].items():
        role = "retained" if name in result["retained"] else "target"
        rmse = (result["fits"].get(name) or {}).get("rmse")
        error = f" (fit rmse {rmse:.4f})" if rmse is not None else ""
        typer.echo(
            f"  {name} ({role}): predicted {value:+.4f} nats/token{error} vs base after "
            f"{result['predicted_at_tokens']:,} tokens"
        )
    at = result.get("at_stage") or {}
    if at.get("recommendation"):
        stage_rec = at["recommendation"]
        changes = ", ".join(f"{name} {value:+.4f}" for name, value in stage_rec["predicted_delta"].items())
        typer.echo(
            f"at the stage's {at['predicted_at_tokens']:,} tokens (the proxies' curves extended "
            f"{at['extrapolation_factor']:.3g}x): least replay within budget {stage_rec['replay_ratio']:g} ({changes})"
        )
    elif at:
        typer.echo(f"at the stage's {at['predicted_at_tokens']:,} tokens: no prediction ({at['message']})")
    typer.echo(f"plan: {out / 'plan.json'} and {out / 'plan.html'}")
    if result.get("applied_config"):
        typer.echo(f"config with the ratio: {result['applied_config']}")


# ---------------------------------------------------------------------------------------------
# cooldown: a decayed branch from a checkpoint of a constant-LR phase (forgetless.train.branch)


@app.command()
def cooldown(
    run_dir: Annotated[Path, typer.Argument(help="The run to branch (a run directory).", show_default=False)],
    tokens: Annotated[int, typer.Option("--tokens", min=1, help="Training tokens over which the LR decays.")],
    from_: Annotated[
        str | None,
        typer.Option("--from", help="The checkpoint to branch from, step_N or N (default: the latest)."),
    ] = None,
    before_end: Annotated[
        bool,
        typer.Option(
            "--tokens-before-end",
            help="Branch from the checkpoint TOKENS before the end of its stage (the branch ends where the stage does).",
        ),
    ] = False,
    shape: Annotated[
        str,
        typer.Option(
            "--shape", help="linear, cosine, 1-sqrt (constant and wsd stages) or exponential (infinite)."
        ),
    ] = "linear",
    mix: Annotated[
        str | None,
        typer.Option(
            "--mix",
            help="Decay on another mixture: source=weight,... of the run's sources (e.g. a high-quality subset); "
            "replay keeps its share.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="The branch's run directory (default: RUN_DIR/branches/step_N-<shape>-<steps>steps).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
) -> None:
    """Decay a constant-LR (constant, WSD or infinite) stage from one of its checkpoints into a new run
    directory: the same run with the LR taken down to the stage's floor over TOKENS, evaluated, with its
    own ledger against the same base. The run itself is untouched and can go on.
    """
    from forgetless.train.branch import cooldown as run_cooldown
    from forgetless.train.branch import parse_mix

    if from_ is not None and before_end:
        raise UserError("cooldown: give --from or --tokens-before-end, not both")
    step = None
    if from_ is not None:
        text = from_.removeprefix("step_")
        if not text.isdigit():
            raise UserError(f"--from {from_}: expected step_N or N")
        step = int(text)
    branch = run_cooldown(
        run_dir,
        tokens=tokens,
        from_step=step,
        before_end=before_end,
        shape=shape,
        mix=parse_mix(mix) if mix is not None else None,
        out=out,
        quiet=quiet,
    )
    _print_run_result(branch)


# ---------------------------------------------------------------------------------------------
# import-gguf


@app.command("import-gguf")
def import_gguf(
    file: Annotated[Path, typer.Argument(help="A GGUF model file (llama.cpp format).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="The model dir to write (must not exist or be empty).")],
    dtype: Annotated[
        str, typer.Option("--dtype", help="Weight dtype of the written model: bfloat16 or float32.")
    ] = "bfloat16",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars while de-quantizing.")] = False,
) -> None:
    """Write a GGUF model as a Hugging Face model dir (safetensors + tokenizer) that every command
    takes: transformers de-quantizes each weight (needs the gguf extra: pip install 'forgetless[gguf]').

    The weights keep the file's quantization error; the written dir is checked by loading it with
    plain transformers (same weights, logits and token ids) before it is renamed into place.
    """
    from forgetless.model.gguf import import_gguf as run_import

    result = run_import(file, out, dtype=dtype, progress=not quiet)
    types = ", ".join(f"{name} x{count}" for name, count in sorted(result.facts.tensor_types.items()))
    typer.echo(
        f"imported {file.name} ({result.facts.architecture}; tensors {types}) as {result.model_class}, "
        f"{result.parameters:,} parameters, vocabulary {result.vocab_size:,}, {result.dtype}, "
        f"in {result.total_s:.1f}s: {result.out_dir}"
    )
