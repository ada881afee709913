"""`vtp`: run the system, demo it, and operate it."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
import warnings

import typer
from rich.console import Console

from shared import eventloop
from shared.logging import configure_logging
from vtp.device.cli import device_app
from vtp.devstack.stack import (
    KEYS_FILE,
    OPERATIONS_TOKEN,
    Stack,
    operations_token,
    read_running_stack,
    without_password,
)
from vtp.finance.cli import finance_app
from vtp.locate import state_folder
from vtp.operations.deadletters_cli import deadletters_app
from vtp.operations.lag_cli import lag_command
from vtp.operations.status_cli import status_command
from vtp.usage.cli import usage_command

app = typer.Typer(help="Vrijetijdspas: leisure card refunds from check-ins.", no_args_is_help=True)
console = Console(stderr=True)
app.add_typer(device_app, name="device")
app.add_typer(finance_app, name="finance")
app.add_typer(deadletters_app, name="deadletters")


@app.callback()
def _tool_logging() -> None:
    """Library log lines go to stderr (warnings and worse): stdout is for results."""
    configure_logging("vtp", "WARNING", json=False, stream=sys.stderr)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


@app.command()
def up(
    claims_processes: int = typer.Option(1, help="How many claims consumer processes to run."),
) -> None:
    """Start the whole system on the embedded defaults and keep it running until Ctrl-C."""
    stack = Stack(state_folder(None), claims_processes=claims_processes)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        with console.status("starting") as status:
            stack.start(progress=lambda text: status.update(text))
        console.print(f"[bold green]Vrijetijdspas is running[/] (state in {stack.state_dir})")
        rows = [("Kafka bootstrap", stack.bootstrap_servers)]
        rows += [(f"PostgreSQL {name}", without_password(dsn)) for name, dsn in stack.dsns.items()]
        rows.append(
            (
                "SMTP sink",
                f"127.0.0.1:{stack.smtp.port if stack.smtp else '-'}"
                f"  (mail in {stack.smtp.mailbox if stack.smtp else '-'})",
            )
        )
        rows += [
            (s.name, f"{s.url}  (API docs {s.url}/docs, logs {s.log_path})") for s in stack.services
        ]
        width = max(len(label) for label, _ in rows) + 2  # one column, however long a name
        for label, value in rows:
            console.print(f"  {label:<{width}}{value}", soft_wrap=True)  # URLs stay whole
        console.print(
            "  claims and notifications want 'Authorization: Bearer <token>': the token is"
            f" {OPERATIONS_TOKEN!r} in {stack.state_dir / KEYS_FILE}"
        )
        console.print(
            "Try: [bold].venv/bin/vtp demo --checkins 500[/]   "
            "Look: [bold].venv/bin/vtp status[/]   Stop: Ctrl-C"
        )
        told: set[str] = set()
        while not stopping:
            time.sleep(0.5)
            for name, how in stack.ended().items():
                if name not in told:  # said once, in the terminal an operator watches
                    told.add(name)
                    console.print(
                        f"[bold red]{name} {how}[/]: the rest keeps running, without it;"
                        f" `vtp up` restarts nothing (logs in {stack.log_dir}; Ctrl-C and"
                        " `vtp up` again to start everything)"
                    )
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping everything")
        stack.stop()


@app.command()
def demo(
    checkins: int = typer.Option(500, min=1, help="How many check-in messages to emit."),
    holders: int = typer.Option(300, min=1, help="How many card holders to register."),
    seed: int = typer.Option(1, help="Random seed for the demo data."),
    json_output: bool = typer.Option(False, "--json", help="End with one JSON object."),
) -> None:
    """Seed a demo municipality, emit check-ins and show what became of them."""
    from vtp.demo.run import Endpoints, print_json_line, run_demo

    running = read_running_stack(state_folder(None))
    own: Stack | None = None
    if running is None:
        own = Stack(state_folder(None) / "demo")
        with console.status("no running stack: starting one for this demo") as status:
            own.start(progress=lambda text: status.update(text))
        endpoints = Endpoints(
            own.bootstrap_servers,
            own.url("cards"),
            own.url("claims"),
            own.url("notifications"),
            own.keys[OPERATIONS_TOKEN],
        )
    else:
        services = running["services"]
        endpoints = Endpoints(
            running["bootstrap_servers"],
            services["cards"]["url"],
            services["claims"]["url"],
            services["notifications"]["url"],
            operations_token(state_folder(None)),
        )
    try:
        summary = eventloop.run(run_demo(endpoints, checkins, holders, seed, console))
    finally:
        if own is not None:
            own.stop()
    if json_output:
        print_json_line(summary)


@app.command()
def bench(
    smoke: bool = typer.Option(
        False, "--smoke", help="A small run that checks the benchmark works."
    ),
    checkins: int = typer.Option(
        0, min=0, help="End-to-end check-ins per run (0: 50,000; 1,000 with --smoke)."
    ),
    json_output: bool = typer.Option(False, "--json", help="End with one JSON object."),
    statements: bool = typer.Option(
        False,
        "--statements",
        help="Also list the SQL statements PostgreSQL spent the throughput phase on.",
    ),
) -> None:
    """Measure throughput, latency and memory against the broker's and database's ceilings."""

    import dataclasses

    from vtp.bench.run import FULL, SMOKE, run_bench

    size = SMOKE if smoke else FULL
    if checkins:
        size = dataclasses.replace(size, e2e_checkins=checkins)
    folder = state_folder(None) / "bench"
    shutil.rmtree(folder, ignore_errors=True)  # seeding twice into one database would clash
    result = eventloop.run(run_bench(folder, size, console, statements=statements))
    if json_output:
        print(json.dumps(result, sort_keys=True))


@app.command()
def chaos(
    seed: int = typer.Option(1, help="Seeds the workload and the fault schedule."),
    checkins: int = typer.Option(2000, min=50, help="How many check-in messages to replay."),
    faults: int = typer.Option(
        0, min=0, help="How many faults (0: one per ~900 check-ins, >= 10)."
    ),
    json_output: bool = typer.Option(False, "--json", help="End with one JSON object."),
) -> None:
    """Replay a seeded workload under injected faults and compare with a reference model."""

    from vtp.chaos.run import run_chaos

    folder = state_folder(None) / f"chaos-{seed}"
    shutil.rmtree(folder, ignore_errors=True)  # a run starts from nothing: no earlier data
    try:
        report = eventloop.run(run_chaos(folder, seed, checkins, console, faults or None))
    except Exception as exc:  # still one JSON line: the harness itself failed
        console.print_exception()
        if json_output:
            print(json.dumps({"seed": seed, "ok": False, "error": f"{type(exc).__name__}: {exc}"}))
        raise typer.Exit(2) from exc
    for line in report["fault_log"]:
        console.print(f"  fault {line}")
    verdict = "[bold green]OK[/]" if report["ok"] else "[bold red]DIFFERENCES[/]"
    console.print(
        f"{verdict}: lost {report['lost']}, duplicated {report['duplicated']}, "
        f"mismatched {report['mismatched_outcomes']}, ledger difference "
        f"{report['ledger_difference_cents']} cents, faults {report['faults_injected']}"
    )
    for example in report["examples"]:
        console.print(f"  {example}")
    if json_output:
        print(json.dumps({k: v for k, v in report.items() if k != "fault_log"}, sort_keys=True))
    raise typer.Exit(0 if report["ok"] else 1)


# The operator's looks, listed after the commands that start and exercise the system.
app.command("status")(status_command)
app.command("lag")(lag_command)
app.command("usage")(usage_command)

if __name__ == "__main__":
    app()
