"""`wharf autoscale`: run (the daemon), simulate (replay a trace), status (what it would do now)."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from wharf.errors import BadInput, Failure, WharfError

# marathon-lb-autoscale's options keep their names and meanings; wharf's own come after.
MLB_OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option("--marathon", "marathon_url", metavar="URL",
                 help="Marathon URL(s), comma-separated [default: MARATHON_URL]"),
    click.option("--haproxy", "haproxy", multiple=True, metavar="URLS",
                 help="HAProxy base URL(s) whose /haproxy?stats;csv is read, comma-separated, or admin "
                      "socket paths; repeatable"),
    click.option("--target-rps", type=float, help="Target requests per second per instance "
                                                  "(apps' wharf.autoscale.target_rps labels override)"),
    click.option("--apps", "apps", multiple=True, metavar="NAME_PORT[,...]",
                 help="marathon-lb backends <app>_<servicePort> to scale, comma-separated"),
    click.option("--min-instances", type=int, default=None, help="Fewest instances [default 1]"),
    click.option("--max-instances", type=int, default=None, help="Most instances [default: no limit]"),
    click.option("--marathonCredentials", "marathon_credentials", metavar="USER:PASS",
                 help="Marathon basic auth (never logged)"),
    click.option("--haproxyCredentials", "haproxy_credentials", metavar="USER:PASS",
                 help="HAProxy stats basic auth (never logged)"),
]
RUN_ONLY: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option("--interval", type=float, default=60.0, show_default=True, help="Seconds between cycles"),
    click.option("--samples", type=int, default=None,
                 help="marathon-lb-autoscale's averaging window in intervals: wharf's scale-down "
                      "stabilization becomes samples × interval"),
    click.option("--cooldown", type=int, default=None,
                 help="Intervals after a change during which the app does not shrink"),
    click.option("--threshold-percent", type=float, default=None,
                 help="Shrink only when rps per instance is this fraction under the target"),
    click.option("--threshold-instances", type=int, default=None,
                 help="...or when the count would drop by at least this many"),
    click.option("--intervals-past-threshold", type=int, default=None,
                 help="Intervals in a row the load must stay past the band before the app grows or "
                      "shrinks: both stabilization windows become at least N × interval"),
    click.option("--haproxy_frontend_or_backend", "frontend_or_backend", default=None, hidden=True,
                 help="Accepted for compatibility; wharf always reads backend rows"),
    click.option("--tolerance", type=float, default=None,
                 help="Band around the target, ± fraction in (0, 1) [0.1]"),
    click.option("--scale-up-stabilization", type=float, default=None, help="Seconds [0]"),
    click.option("--scale-down-stabilization", type=float, default=None, help="Seconds [60]"),
    click.option("--max-step", type=int, default=None, help="Most instances added or removed at once"),
]


def _apply(options: list[Callable[[Callable[..., Any]], Callable[..., Any]]]) -> Callable[..., Any]:
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


def _credentials(value: str | None, flag: str) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user:
        raise BadInput(f"{flag}: expected USER:PASS")
    return user, password


def _split(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _hide_secrets(*auths: tuple[str, str] | None) -> None:
    from wharf.log import Redactor

    secrets = [a[1] for a in auths if a and a[1]]
    for handler in logging.getLogger().handlers:
        handler.addFilter(Redactor(secrets))


#: option name -> (whether a value is accepted, the reason when it is not); non-finite numbers never are
LIMITS: dict[str, tuple[Callable[[float], bool], str]] = {
    "target_rps": (lambda v: v > 0, "must be > 0"),
    "interval": (lambda v: v > 0, "must be > 0"),
    "samples": (lambda v: v >= 1, "must be >= 1"),
    "cooldown": (lambda v: v >= 0, "must be >= 0"),
    "threshold_percent": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "threshold_instances": (lambda v: v >= 1, "must be >= 1"),
    "intervals_past_threshold": (lambda v: v >= 1, "must be >= 1"),
    "tolerance": (lambda v: 0 < v < 1, "must be in (0, 1)"),
    "min_instances": (lambda v: v >= 0, "must be >= 0"),
    "max_instances": (lambda v: v >= 1, "must be >= 1"),
    "max_step": (lambda v: v >= 1, "must be >= 1"),
    "scale_up_stabilization": (lambda v: v >= 0, "must be >= 0"),
    "scale_down_stabilization": (lambda v: v >= 0, "must be >= 0"),
    "metrics_port": (lambda v: 1 <= v <= 65535, "must be a port, 1-65535"),
    "window": (lambda v: v >= 0, "must be >= 0"),
    "startup": (lambda v: v >= 0, "must be >= 0"),
    "overload_factor": (lambda v: v > 0, "must be > 0"),
    "seeds": (lambda v: v >= 1, "must be >= 1"),
}


def check_flags(opts: Mapping[str, Any]) -> None:
    """Raise BadInput naming the first flag given out of its range, and why."""
    for name, (accepted, why) in LIMITS.items():
        value = opts.get(name)
        if value is not None and not (math.isfinite(value) and accepted(value)):
            raise BadInput(f"--{name.replace('_', '-')}: {why}, got {value:g}")
    low, high = opts.get("min_instances"), opts.get("max_instances")
    if low is not None and high is not None and high < low:
        raise BadInput(f"--max-instances: max must be >= min (--min-instances {low}), got {high}")


def _base_policy(opts: Mapping[str, Any]) -> dict[str, Any]:
    """The command line's policy, as the Policy fields it sets: the base that every app's
    `wharf.autoscale.*` labels override (with no `--target-rps`, an app needs the target label).

    marathon-lb-autoscale's counts of intervals become seconds: `--samples N` the scale-down window,
    `--cooldown N` the cooldown, `--intervals-past-threshold N` the scale-up window and the least
    scale-down window (N intervals in a row past the band). wharf's own flags in seconds win.
    """
    from autoscale.policy import Policy

    interval = opts.get("interval") or 60.0
    values: dict[str, Any] = {}
    if opts.get("samples") is not None:
        values["scale_down_stabilization"] = opts["samples"] * interval
    if opts.get("cooldown") is not None:
        values["cooldown"] = opts["cooldown"] * interval
    if opts.get("intervals_past_threshold") is not None:
        window = opts["intervals_past_threshold"] * interval
        values["scale_up_stabilization"] = window
        values["scale_down_stabilization"] = max(
            values.get("scale_down_stabilization", Policy.scale_down_stabilization), window)
    for flag, name in (("target_rps", "target_rps"), ("min_instances", "min_instances"),
                       ("max_instances", "max_instances"), ("threshold_percent", "down_tolerance"),
                       ("threshold_instances", "down_threshold_instances"), ("tolerance", "tolerance"),
                       ("scale_up_stabilization", "scale_up_stabilization"),
                       ("scale_down_stabilization", "scale_down_stabilization"), ("max_step", "max_step")):
        if opts.get(flag) is not None:
            values[name] = opts[flag]
    return values


def _wire(ctx: click.Context, opts: dict[str, Any]) -> tuple[Any, list[Any], list[str], dict[str, Any]]:
    from autoscale.marathon import MarathonApps
    from autoscale.stats import StatsSource
    from wharf.settings import parse_url_list

    check_flags(opts)
    marathon_auth = _credentials(opts.get("marathon_credentials"), "--marathonCredentials")
    haproxy_auth = _credentials(opts.get("haproxy_credentials"), "--haproxyCredentials")
    given = opts.get("marathon_url")
    try:
        urls = list(parse_url_list(given)) if given else list((ctx.obj["marathon_url"] if ctx.obj else None) or ())
    except ValueError as exc:
        raise BadInput(f"--marathon: {exc}") from None
    if not urls:
        raise BadInput("--marathon: no Marathon URL given (or set MARATHON_URL)")
    marathon = MarathonApps(urls, marathon_auth)
    haproxies = _split(opts.get("haproxy") or ())
    if not haproxies:
        raise BadInput("--haproxy: no HAProxy given")
    sources = [StatsSource.parse(h, haproxy_auth) for h in haproxies]
    _hide_secrets(marathon.auth, *(s.auth for s in sources))
    names = _split(opts.get("apps") or ())
    return marathon, sources, names, _base_policy(opts)


@click.group()
def autoscale() -> None:
    """Scale Marathon apps on their HAProxy request rate."""


@autoscale.command("run")
@_apply(MLB_OPTIONS + RUN_ONLY)
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on 127.0.0.1:PORT")
@click.option("--dry-run", is_flag=True,
              help="Decide and log, with the projected load behind each decision, but do not scale")
@click.option("--once", is_flag=True, help="Run one cycle and exit")
@click.option("--drain-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Scaling down: seconds to wait for the tasks to be removed to leave rotation (Consul "
                   "maintenance, seen in the --haproxy stats) and finish their sessions before the kill")
@click.option("--no-drain", is_flag=True,
              help="Scale down by lowering the count and letting Marathon kill, as marathon-lb-autoscale does")
@click.pass_context
def run(ctx: click.Context, metrics_port: int | None, dry_run: bool, once: bool, drain_timeout: float,
        no_drain: bool, **opts: Any) -> None:
    """Run the autoscaler (accepts marathon-lb-autoscale's command line unchanged)."""
    from autoscale.daemon import Autoscaler
    from wharf.consul_http import client_from
    from wharf.drain import from_settings

    marathon, sources, names, policy = _wire(ctx, {**opts, "metrics_port": metrics_port})
    settings = ctx.find_root().obj
    drain = None if no_drain else from_settings(marathon.client, sources, settings, drain_timeout)
    consul = client_from(settings)
    daemon = Autoscaler(marathon, sources, names, policy, opts["interval"], metrics_port, dry_run, drain=drain,
                        publish=lambda key, value: consul.kv.put(key, value))
    if once:
        try:
            daemon.run_cycle()
            for thread in daemon.draining.values():
                thread.join()
        except WharfError:
            raise
        except Exception as exc:  # one cycle, as the daemon would log it, but as the exit code
            raise Failure(f"autoscale: {type(exc).__name__}: {exc}") from None
        return
    ctx.exit(daemon.run(settings))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, box=None)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console(width=200).print(table)


@autoscale.command("status")
@_apply(MLB_OPTIONS)
@click.option("--window", type=float, default=2.0, show_default=True,
              help="Seconds between the two stats readings the rate is measured over")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@click.pass_context
def status(ctx: click.Context, window: float, as_json: bool, **opts: Any) -> None:
    """Each autoscaled app: instances, observed rps, policy, and what a decision would be now."""
    from autoscale.daemon import Autoscaler, action_of
    from autoscale.decide import decide
    from autoscale.marathon import select

    marathon, sources, names, policy = _wire(ctx, {**opts, "window": window})
    reader = Autoscaler(marathon, sources, names, policy)
    try:
        reader.read_all()
        time.sleep(max(window, 0.0))
        reader.read_all()
    finally:
        reader._shutdown()
    selection = select(marathon.apps(), names, policy)
    rows = []
    for item in selection.scaled:
        d = decide(reader.readings_for(item.backends), item.app.instances, item.policy, time.monotonic(),
                   deploying=item.app.deploying)
        rows.append({"app": item.app.id, "backends": ",".join(item.backends), "instances": item.app.instances,
                     "rps": None if d.rps is None else round(d.rps, 1),
                     "rps_per_instance": None if d.per_instance is None else round(d.per_instance, 1),
                     "target_rps": item.policy.target_rps, "min": item.policy.min_instances,
                     "max": item.policy.max_instances, "deploying": item.app.deploying,
                     "decision": action_of(d), "target": d.target, "reason": d.reason})
    if as_json:
        click.echo(json.dumps({"apps": rows, "unmatched": selection.missing, "problems": selection.problems},
                              indent=2))
        return
    _table(rows, ["app", "instances", "rps", "rps_per_instance", "target_rps", "min", "max", "decision",
                  "target", "reason"])
    for name in selection.missing:
        click.echo(f"no Marathon app for {name}")
    for problem in selection.problems:
        click.echo(f"not scaled: {problem}")


@autoscale.command("simulate")
@click.argument("trace", type=click.Path(path_type=Path), required=False)
@click.option("--policy", "policy_spec", default="target_rps=100", show_default=True,
              help="key=value,... : target_rps, min, max, scale_up_stabilization, scale_down_stabilization, "
                   "max_step, tolerance, cooldown")
@click.option("--interval", type=float, default=60.0, show_default=True, help="Seconds between decisions")
@click.option("--startup", type=float, default=60.0, show_default=True,
              help="Seconds before a new instance serves")
@click.option("--overload-factor", type=float, default=None,
              help="Overloaded above target × this [default 1 + tolerance]")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None,
              help="Draw load, instances and the floor: a .svg (no dependency) or PNG file for a TRACE; "
                   "without TRACE, a directory for one SVG a trace")
@click.option("--compare-mlb", is_flag=True, help="Also run marathon-lb-autoscale's algorithm (its defaults)")
@click.option("--seeds", type=int, default=3, show_default=True,
              help="Without TRACE: traces generated per family member")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (always with both runs)")
def simulate(trace: Path | None, policy_spec: str, interval: float, startup: float, overload_factor: float | None,
             plot_path: Path | None, compare_mlb: bool, seeds: int, as_json: bool) -> None:
    """Replay a `t,rps` load trace through the decision and an instance model; print the score.

    Without TRACE, score the policy against marathon-lb-autoscale and the perfect-foresight floor
    over the generated families (ramps, spikes, diurnal days, noise, flash crowds) and the bundled
    traces, in one table.
    """
    from autoscale.policy import from_spec
    from autoscale.simulate import Model

    check_flags({"interval": interval, "startup": startup, "overload_factor": overload_factor, "seeds": seeds})
    policy = from_spec(policy_spec)
    model = Model(interval, startup, overload_factor)
    if trace is None:
        _simulate_family(policy, model, seeds, plot_path, as_json)
        return
    if plot_path is not None and not (plot_path.parent.resolve()).is_dir():
        raise BadInput(f"--plot: {plot_path}: directory does not exist")
    _simulate_trace(trace, policy, model, plot_path, compare_mlb, as_json)


def _simulate_trace(trace: Path, policy: Any, model: Any, plot_path: Path | None, compare_mlb: bool,
                    as_json: bool) -> None:
    from autoscale.plot import plot
    from autoscale.score import overload_limit
    from autoscale.simulate import floor_counts, load_trace, mlb_options, simulate_mlb, simulate_wharf

    load = load_trace(trace)
    runs = {"wharf": simulate_wharf(load, policy, model)}
    if compare_mlb or as_json:
        runs["mlb"] = simulate_mlb(load, mlb_options(policy, model), model, policy.tolerance)
    floor = floor_counts(load, overload_limit(policy, model), model)
    if plot_path is not None:
        plot(plot_path, load, {name: r.serving for name, r in runs.items()}, floor,
             title=f"{trace.name}: target {policy.target_rps:g} rps")
    if as_json:
        click.echo(json.dumps({name: result.json() for name, result in runs.items()}, indent=2))
        return
    rows: list[dict[str, Any]] = [{"run": name, "overload_seconds": r.overload_seconds,
                                   "instance_seconds": r.instance_seconds, "scale_events": len(r.events)}
                                  for name, r in runs.items()]
    rows.append({"run": "floor", "overload_seconds": 0, "instance_seconds": sum(floor)})
    _table(rows, ["run", "overload_seconds", "instance_seconds", "scale_events"])
    for name, result in runs.items():
        click.echo(f"\n{name} scale events:")
        for e in result.events:
            click.echo(f"  t={e.t:>6.0f}s {e.before:>3} -> {e.after:<3} {e.reason}")
    if plot_path is not None:
        click.echo(f"\nplot: {plot_path}")


def _simulate_family(policy: Any, model: Any, seeds: int, plot_dir: Path | None, as_json: bool) -> None:
    from autoscale.score import overload_limit, plot_each, score, table, traces

    if plot_dir is not None:
        if plot_dir.exists() and not plot_dir.is_dir():
            raise BadInput(f"--plot: {plot_dir}: not a directory (without TRACE it names a directory)")
        try:
            plot_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"--plot: {plot_dir}: {exc.strerror}") from None
    named = traces(range(seeds))
    scores = [score(name, shape, load, policy, model) for name, shape, load in named]
    if plot_dir is not None:
        plot_each(plot_dir, named, scores, policy, model)
    if as_json:
        click.echo(json.dumps({"policy": _policy_text(policy), "traces": [s.json() for s in scores]}, indent=2))
        return
    click.echo(f"policy: {_policy_text(policy)}; overloaded above {overload_limit(policy, model):g} rps "
               f"per instance; decisions every {model.interval:g}s, instances serving {model.startup:g}s "
               f"after they are asked for; mlb: marathon-lb-autoscale's rule with its defaults")
    for line in table(scores):
        click.echo(line)


def _policy_text(policy: Any) -> str:
    return (f"target {policy.target_rps:g} rps, tolerance {policy.tolerance:g}, bounds [{policy.min_instances}, "
            f"{policy.max_instances or 'none'}], windows up {policy.scale_up_stabilization:g}s "
            f"down {policy.scale_down_stabilization:g}s")
