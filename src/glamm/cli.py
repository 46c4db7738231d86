r"""Command-line interface: ``glamm fit`` and ``glamm datasets``.

Examples
--------
::

    glamm fit "Reaction ~ Days + (Days | Subject)" --data sleepstudy --ml
    glamm fit "y ~ x + (1 | g)" --data mydata.csv --json
    glamm fit "cbind(incidence, size - incidence) ~ period + (1 | herd)" \
        --data cbpp --family binomial
    glamm datasets

Without ``--family`` the model is a linear mixed model (:func:`glamm.lmer`); with it, a
generalized linear mixed model (:func:`glamm.glmer`, Laplace approximation; ``--link`` and
``--fast`` apply to it only, and ``--reml`` is an error since GLMMs are fitted by maximum
likelihood).

``--data`` takes the name of a bundled data set or the path of a ``.csv`` or ``.parquet`` file;
with ``--dask`` a parquet directory or glob (``--data 'dir/*.parquet' --dask``) read lazily by
Dask, the model fitted in passes over its partitions (:mod:`glamm.scale`; a GLMM's every
PIRLS iteration is one pass).
Errors in the model or the data are printed as ``error: <message>`` on standard error with
exit status 2 (no traceback). Warnings from the fit are printed as ``warning: <message>`` on
standard error, except that the singular-fit warning and the final optimizer's convergence
warning are left to the notes at the end of the printed summary (with ``--json`` they are
printed, and recorded in the JSON).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import __version__, datasets
from .errors import ConvergenceWarning, GlammError, SingularFitWarning

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
# numpy, pandas and the fitting code are imported when a model is fitted, so `glamm --help` and
# `glamm datasets` start quickly

#: exit status for errors in the user's input (the same status argparse uses)
EXIT_USAGE = 2

_FILE_SUFFIXES = (".csv", ".parquet", ".pq")


class CliError(Exception):
    """A problem with the command-line input that is reported without a traceback."""


def load_data(spec: str) -> pd.DataFrame:
    """The data frame named by ``--data``.

    Parameters
    ----------
    spec : str
        a bundled data set name (see ``glamm datasets``; letter case does not matter) or a
        path to a ``.csv`` or ``.parquet`` (also ``.pq``) file. A path is recognised by its
        suffix or by existing on disk.

    Returns
    -------
    pandas.DataFrame
        CSV files are read with :func:`pandas.read_csv` defaults, so integer
        codes of a grouping column stay integers (glamm treats grouping columns as factors
        anyway).

    Raises
    ------
    CliError
        the file does not exist, has an unsupported type, cannot be parsed, parquet
        support (pyarrow) is missing, or no bundled data set has that name.
    """
    import pandas as pd

    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in _FILE_SUFFIXES or path.is_file():
        if not path.is_file():
            raise CliError(f"data file {spec!r} does not exist")
        if suffix == ".csv":
            try:
                return pd.read_csv(path)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
                raise CliError(f"cannot read CSV file {spec!r}: {exc}") from None
        if suffix in (".parquet", ".pq"):
            if importlib.util.find_spec("pyarrow") is None:
                raise CliError(
                    f"reading the parquet file {spec!r} needs the pyarrow package; install it "
                    "with: pip install 'glamm[parquet]' (or pip install pyarrow)"
                )
            try:
                return pd.read_parquet(path, engine="pyarrow")
            except Exception as exc:  # pyarrow raises its own error types
                raise CliError(f"cannot read parquet file {spec!r}: {exc}") from None
        raise CliError(f"unsupported data file type {suffix or '(none)'!r} for {spec!r}; "
                       "use a .csv or .parquet file or a bundled data set name")
    try:
        return datasets.load(spec)
    except datasets.DatasetNotFoundError as exc:
        raise CliError(f"{exc} A file path must end in .csv or .parquet.") from None


def _json_default(obj: Any) -> Any:
    """Make numpy scalars and arrays JSON-serialisable."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``glamm`` command (subcommands ``fit`` and ``datasets``)."""
    parser = argparse.ArgumentParser(
        prog="glamm",
        description="Fit lme4-style linear and generalized linear mixed models from the "
        "command line.",
    )
    parser.add_argument("--version", action="version", version=f"glamm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    fit = sub.add_parser(
        "fit",
        help="fit a (generalized) linear mixed model and print its summary",
        description="Fit a linear mixed model (REML by default, as lme4's lmer) or, with "
        "--family, a generalized linear mixed model (Laplace approximation, as lme4's glmer) "
        "and print an lme4-style summary, or the fit as JSON with --json.",
    )
    fit.add_argument("formula", metavar="FORMULA",
                     help='lme4-style formula, e.g. "Reaction ~ Days + (Days | Subject)"')
    fit.add_argument("--data", required=True, metavar="NAME_OR_PATH",
                     help="bundled data set name (see 'glamm datasets') or a .csv/.parquet file")
    method = fit.add_mutually_exclusive_group()
    method.add_argument("--ml", dest="reml", action="store_false",
                        help="fit by maximum likelihood (always so with --family)")
    method.add_argument("--reml", dest="reml", action="store_true",
                        help="fit by REML (the default for linear mixed models)")
    fit.set_defaults(reml=None)
    fit.add_argument("--family", metavar="NAME", default=None,
                     help="fit a GLMM with this response family: binomial, poisson, gaussian, "
                     "Gamma, inverse_gaussian or negative_binomial")
    fit.add_argument("--link", metavar="NAME", default=None,
                     help="link function of the GLMM (default: the family's), e.g. logit, "
                     "probit, cloglog, log; needs --family")
    fit.add_argument("--fast", action="store_true",
                     help="GLMM only: estimate the fixed effects inside PIRLS and optimize the "
                     "random-effects parameters only (lme4's nAGQ = 0); needs --family")
    fit.add_argument("--nagq", metavar="N", default="1",
                     help="GLMM only: quadrature points per random effect (1: Laplace, the "
                     "default; more: adaptive Gauss-Hermite quadrature, one grouping factor; "
                     "'auto': 11 for up to two random effects, 7 otherwise); needs --family")
    fit.add_argument("--json", action="store_true",
                     help="print the fit as JSON (the result's to_dict()) instead of the "
                     "summary")
    fit.add_argument("--weights", metavar="COL", default=None,
                     help="column of prior weights")
    fit.add_argument("--offset", metavar="COL", default=None,
                     help="column added to the linear predictor with coefficient 1")
    fit.add_argument("--dask", action="store_true",
                     help="read --data with Dask (a .parquet/.csv path, a glob such as "
                     "'dir/*.parquet', or a parquet directory) and fit the model in passes "
                     "over its partitions, holding only the cross-products in memory (a "
                     "GLMM: one pass per PIRLS iteration; needs pip install 'glamm[dask]')")
    fit.add_argument("--scheduler", metavar="NAME_OR_ADDRESS", default=None,
                     help="with --dask: 'threads' (the default), 'processes', 'synchronous', "
                     "or the address of a dask.distributed scheduler (tcp://host:8786)")
    _response_options(fit)

    gal = sub.add_parser(
        "galamm",
        help="fit a mixed model with factor loadings (R's galamm) and print its summary",
        description="Fit a generalized linear mixed model with factor loadings by maximum "
        "likelihood (Laplace approximation) and print a galamm-style summary, or the fit as "
        "JSON with --json.",
    )
    gal.add_argument("formula", metavar="FORMULA",
                     help='formula whose random-effects terms use the factors, e.g. '
                     '"y ~ item + (0 + ability | school/sid)"')
    gal.add_argument("--data", required=True, metavar="NAME_OR_PATH",
                     help="bundled data set name or a .csv/.parquet file")
    gal.add_argument("--load-var", required=True, metavar="COL",
                     help="column whose levels index the rows of the loading matrix")
    gal.add_argument("--factor", required=True, action="append", metavar="NAME",
                     help="a latent variable (repeat for several, in the order of the "
                     "loading matrix's columns)")
    gal.add_argument("--lambda", dest="lambda_", required=True, metavar="MATRIX",
                     help="loading matrix, rows separated by ';' and entries by ',', NA for a "
                     "free loading, e.g. '1;NA;NA' or '1,0;NA,0;NA,1;NA,NA'")
    gal.add_argument("--factor-interactions", metavar="FORMULAS", default=None,
                     help="one formula per level of the load variable, separated by ';', "
                     "e.g. '~1;~1;~x'")
    gal.add_argument("--family", metavar="NAME", default="gaussian",
                     help="response family (default gaussian)")
    gal.add_argument("--link", metavar="NAME", default=None, help="link function")
    gal.add_argument("--json", action="store_true", help="print the fit as JSON")
    gal.add_argument("--weights", metavar="COL", default=None, help="column of prior weights")
    gal.add_argument("--offset", metavar="COL", default=None, help="offset column")
    _response_options(gal)

    gls = sub.add_parser(
        "gls", help="fit a linear model with correlated residuals (R's nlme::gls)",
        description="Fit a linear model without random effects whose residuals are "
        "correlated (--correlation) and/or heteroscedastic (--dispformula), by REML (default) "
        "or ML, and print an nlme-style summary, or the fit as JSON with --json.")
    gls.add_argument("formula", metavar="FORMULA", help='e.g. "Reaction ~ Days"')
    gls.add_argument("--data", required=True, metavar="NAME_OR_PATH",
                     help="bundled data set name or a .csv/.parquet file")
    gls.add_argument("--correlation", metavar="STRUCTURE", default=None,
                     help="e.g. 'ar1(Days | Subject)', 'exp(x + y, nugget=True)'")
    gls.add_argument("--dispformula", metavar="FORMULA", default=None,
                     help="residual variance function, e.g. '~ (1 | g)'")
    gls.add_argument("--ml", dest="reml", action="store_false", default=True,
                     help="maximum likelihood instead of REML")
    gls.add_argument("--json", action="store_true", help="print the fit as JSON")

    cl = sub.add_parser(
        "clmm", help="fit a cumulative link mixed model for an ordinal response (ordinal's "
        "clmm)", description="Fit a cumulative link mixed model (the response's levels in "
        "sorted order unless the file carries an order) and print an ordinal-style summary, "
        "or the fit as JSON with --json.")
    cl.add_argument("formula", metavar="FORMULA",
                    help='e.g. "rating ~ temp + contact + (1 | judge)"')
    cl.add_argument("--data", required=True, metavar="NAME_OR_PATH",
                    help="bundled data set name or a .csv/.parquet file")
    cl.add_argument("--link", metavar="NAME", default="logit",
                    help="logit (default), probit or cloglog")
    cl.add_argument("--nagq", metavar="N", type=int, default=1,
                    help="quadrature points (1: Laplace; one grouping factor for more)")
    cl.add_argument("--json", action="store_true", help="print the fit as JSON")

    sub.add_parser("datasets", help="list the bundled data sets",
                   description="List the names of the bundled data sets, one per line.")
    return parser


def _response_options(p: argparse.ArgumentParser) -> None:
    """The options for per-row families and residual variance functions."""
    p.add_argument("--family-index", metavar="COL", default=None,
                   help="per-row families: with --family a comma-separated list (e.g. "
                   "'gaussian,binomial', a link as 'binomial:probit'), the column of 1-based "
                   "positions in it")
    p.add_argument("--family-by", metavar="COL", default=None,
                   help="per-row families: with --family as 'a=gaussian,b=binomial', the "
                   "column holding the labels")
    p.add_argument("--trials", metavar="COL", default=None,
                   help="per-row families: the binomial rows' numbers of trials")
    p.add_argument("--dispformula", metavar="FORMULA", default=None,
                   help="residual variance function: '~ (1 | g)', '~ x', '~ power(x)', ...")
    p.add_argument("--ziformula", metavar="FORMULA", default=None,
                   help="zero inflation (or the zero part of a truncated_* hurdle family) of a "
                   "count GLMM, e.g. '~ mined'")
    p.add_argument("--correlation", metavar="STRUCTURE", default=None,
                   help="residual correlation within the random-effects term's groups, as "
                   "nlme's lme: e.g. 'ar1(Days | Subject)' (LMMs only)")


def _family_argument(text: str | None):
    """``--family``: a name, ``name:link``, a list ``a,b`` or a dict ``l1=a,l2=b``."""
    if text is None or "," not in text:
        return text

    def one(entry: str):
        name, _, link = entry.strip().partition(":")
        return (name, link) if link else name

    entries = [e for e in text.split(",") if e.strip()]
    if all("=" in e for e in entries):
        return {lab.strip(): one(fam) for lab, _, fam in (e.partition("=") for e in entries)}
    if any("=" in e for e in entries):
        raise CliError("--family: give every entry as label=family, or none")
    return [one(e) for e in entries]


def load_dask_data(spec: str) -> Any:
    """The ``dask.dataframe.DataFrame`` named by ``--data`` with ``--dask``: a parquet file,
    directory or glob (``dir/*.parquet``), or a CSV file or glob, read lazily.

    Raises
    ------
    CliError
        Dask is not installed, or nothing matches ``spec``.
    """
    if importlib.util.find_spec("dask") is None or \
            importlib.util.find_spec("dask.dataframe") is None:
        raise CliError("--dask needs the dask package; install it with: "
                       "pip install 'glamm[dask]'")
    import glob

    import dask.dataframe as dd

    path = Path(spec)
    matches = sorted(glob.glob(spec)) if any(ch in spec for ch in "*?[") else \
        ([spec] if path.exists() else [])
    if not matches:
        raise CliError(f"--data {spec!r} matches no file or directory")
    csv = all(m.lower().endswith(".csv") for m in matches)
    try:
        return dd.read_csv(matches) if csv else dd.read_parquet(matches)
    except Exception as exc:  # the readers raise their own error types
        raise CliError(f"cannot read {spec!r} with Dask: {exc}") from None


def _dask_scheduler(name: str | None) -> Any:
    """A context in which Dask runs on the scheduler ``--scheduler`` names."""
    import contextlib

    if name is None:
        return contextlib.nullcontext()
    import dask

    if name in ("threads", "processes", "synchronous", "sync", "single-threaded"):
        return dask.config.set(scheduler=name)
    try:
        from distributed import Client
    except ImportError:
        raise CliError("--scheduler with an address needs the distributed package; install "
                       "it with: pip install 'glamm[dask]'") from None
    try:
        return Client(name)
    except OSError as exc:
        raise CliError(f"cannot connect to the Dask scheduler {name!r}: {exc}") from None


def _check_fit_options(args: argparse.Namespace) -> None:
    """Options that only make sense for one kind of model."""
    if args.scheduler is not None and not args.dask:
        raise CliError("--scheduler needs --dask")
    if args.family is None:
        given = [opt for opt, used in (("--link", args.link is not None), ("--fast", args.fast),
                                       ("--nagq", args.nagq != "1")) if used]
        if len(given) == 1:
            raise CliError(f"{given[0]} needs --family (it applies to generalized linear mixed "
                           "models only)")
        if given:
            raise CliError(f"{' and '.join(given)} need --family (they apply to generalized "
                           "linear mixed models only)")
    elif args.reml:
        raise CliError("--reml does not apply with --family: generalized linear mixed models "
                       "are fitted by maximum likelihood (Laplace approximation)")


def _fit(args: argparse.Namespace, data: pd.DataFrame):
    from .glmer_api import glmer
    from .lmer_api import lmer

    if args.family is None and args.ziformula is not None:
        raise CliError("--ziformula needs a count --family (poisson, nbinom2, "
                       "truncated_poisson, ...)")
    if args.family is None:
        reml = True if args.reml is None else args.reml
        return lmer(args.formula, data, reml=reml, weights=args.weights, offset=args.offset,
                    dispformula=args.dispformula, correlation=args.correlation)
    if args.correlation is not None:
        raise CliError("--correlation applies to linear mixed models (without --family)")
    if args.nagq == "auto":
        nagq: int | str = "auto"
    else:
        try:
            nagq = int(args.nagq)
        except ValueError:
            raise CliError(f"--nagq takes a whole number or 'auto', got {args.nagq!r}") from None
    return glmer(args.formula, data, family=_family_argument(args.family), link=args.link,
                 fast=args.fast, weights=args.weights, offset=args.offset, nagq=nagq,
                 family_index=args.family_index, family_by=args.family_by, trials=args.trials,
                 dispformula=args.dispformula, ziformula=args.ziformula)


def _loading_matrix(text: str) -> list[list[float]]:
    """``'1,0;NA,0'`` -> ``[[1, 0], [nan, 0]]`` (``NA``/``nan`` mark free loadings)."""
    rows = []
    for row in text.split(";"):
        entries = []
        for item in row.split(","):
            item = item.strip()
            if item.upper() in ("NA", "NAN"):
                entries.append(float("nan"))
                continue
            try:
                entries.append(float(item))
            except ValueError:
                raise CliError(f"--lambda entries are numbers or NA, got {item!r}") from None
        rows.append(entries)
    if len({len(r) for r in rows}) != 1:
        raise CliError("--lambda rows must all have the same number of entries")
    return rows


def _fit_galamm(args: argparse.Namespace, data: pd.DataFrame):
    from .galamm_api import galamm

    for opt, value in (("--ziformula", args.ziformula), ("--correlation", args.correlation)):
        if value is not None:
            raise CliError(f"{opt} is not available for galamm fits")

    interactions = None
    if args.factor_interactions is not None:
        interactions = [f.strip() for f in args.factor_interactions.split(";")]
    factor = args.factor[0] if len(args.factor) == 1 else list(args.factor)
    return galamm(args.formula, data, family=_family_argument(args.family), link=args.link,
                  load_var=args.load_var, factor=factor, lambda_=_loading_matrix(args.lambda_),
                  factor_interactions=interactions, weights=args.weights, offset=args.offset,
                  family_index=args.family_index, family_by=args.family_by,
                  trials=args.trials, dispformula=args.dispformula)


def _cmd_fit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.command == "fit":
        _check_fit_options(args)
    dask = args.command == "fit" and args.dask
    data = load_dask_data(args.data) if dask else load_data(args.data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if dask:
            with _dask_scheduler(args.scheduler):
                m = _fit(args, data)
                text = json.dumps(m.to_dict(), indent=2, default=_json_default) \
                    if args.json else m.summary()
        elif args.command == "fit":
            m = _fit(args, data)
        elif args.command == "clmm":
            import pandas as pd

            from .clmm_api import clmm

            response = args.formula.split("~", 1)[0].strip()
            if response in data.columns and not (
                    isinstance(data[response].dtype, pd.CategoricalDtype)
                    and data[response].cat.ordered):
                values = sorted(data[response].dropna().unique())
                data = data.assign(**{response: pd.Categorical(data[response], values,
                                                               ordered=True)})
            m = clmm(args.formula, data, link=args.link, nagq=args.nagq)
        elif args.command == "gls":
            from .gls_api import gls

            m = gls(args.formula, data, correlation=args.correlation,
                    dispformula=args.dispformula, reml=args.reml)
        else:
            m = _fit_galamm(args, data)
    # the printed summary ends with notes on a singular fit and on an unconverged final
    # optimization; other warnings (e.g. an unconverged first stage of a GLMM fit) are printed
    in_summary: tuple[type[Warning], ...] = ()
    if not args.json:
        in_summary = ((SingularFitWarning,) if getattr(m, "is_singular", False) else ()) + \
            ((ConvergenceWarning,) if not m.converged else ())
    seen = set()
    for w in caught:
        msg = str(w.message)
        if in_summary and issubclass(w.category, in_summary):
            continue
        if msg not in seen:
            seen.add(msg)
            print(f"warning: {msg}", file=err)
    if dask:   # (made while the scheduler ran: the summary's residuals take a pass)
        print(text, file=out)
    elif args.json:
        print(json.dumps(m.to_dict(), indent=2, default=_json_default), file=out)
    else:
        print(m.summary(), file=out)
    return 0


def _cmd_datasets(out: TextIO) -> int:
    for name in datasets.list():
        print(name, file=out)
    return 0


#: exit status when the reader of standard output went away (128 + SIGPIPE, as a shell reports
#: a program killed by a broken pipe)
EXIT_BROKEN_PIPE = 141


def _quiet_on_broken_pipe(run: Callable[..., int]) -> Callable[..., int]:
    """Wrap the command so that a reader closing the pipe early (``glamm fit ... | head -1``)
    ends it quietly: standard output is pointed at ``os.devnull`` (so the interpreter's last
    flush cannot fail again) and the status is :data:`EXIT_BROKEN_PIPE`, with no traceback."""
    @functools.wraps(run)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            code = run(*args, **kwargs)
            sys.stdout.flush()   # output still buffered would fail at exit, outside this try
            return code
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return EXIT_BROKEN_PIPE
    return wrapper


@_quiet_on_broken_pipe
def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``glamm`` command.

    Parameters
    ----------
    argv : Sequence[str], optional
        the arguments after the program name (default ``None``: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 for errors in the arguments, the model or the data
        (message on standard error, no traceback).
    """
    parser = build_parser()
    out, err = sys.stdout, sys.stderr
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # --help, --version and usage errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    try:
        if args.command in ("fit", "galamm", "gls", "clmm"):
            return _cmd_fit(args, out, err)
        return _cmd_datasets(out)
    except (GlammError, CliError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
