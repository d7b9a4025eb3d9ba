"""The ``jobpulse`` command.

Job-side verbs (exec, status, flush, version) need nothing of the sidecar. Sidecar verbs import
``jobpulse.sidecar`` only when called, and name the ``sidecar`` extra when it is missing.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

__all__ = ["main"]

EX_USAGE = 2
EX_CONFIG = 78  # sysexits EX_CONFIG


def package_version() -> str:
    try:
        return version("jobpulse")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def _sidecar(module: str, func: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            mod = importlib.import_module(f"jobpulse.sidecar.{module}")
        except ImportError as exc:
            missing = getattr(exc, "name", None) or str(exc)
            print(
                f"jobpulse: this command needs the sidecar extra ({missing} is not installed): "
                "pip install 'jobpulse[sidecar]'",
                file=sys.stderr,
            )
            return EX_CONFIG
        result: int = getattr(mod, func)(args)
        return result

    return run


def _generate(args: argparse.Namespace) -> int:
    # The Alertmanager intervals come from the configuration file, which the generators (they
    # stand alone) do not read: the sidecar's commands load it and hand them plain data.
    if args.what == "alertmanager":
        return _sidecar("commands", "generate_alertmanager")(args)
    return _sidecar("generate", "main")(args)


def _local(module: str, func: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        mod = importlib.import_module(f"jobpulse.instrumentation.{module}")
        result: int = getattr(mod, func)(args)
        return result

    return run


def _version(args: argparse.Namespace) -> int:
    print(f"jobpulse {package_version()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobpulse", description="Observability for background jobs."
    )
    parser.add_argument("--version", action="version", version=f"jobpulse {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the sidecar")
    p.add_argument("--host", help="address to listen on (JOBPULSE_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (JOBPULSE_PORT, default 8484)")
    p.add_argument("--config", help="jobpulse.yaml (JOBPULSE_CONFIG)")
    p.add_argument("--store", help="store URL (JOBPULSE_STORE_URL, default sqlite:///jobpulse.db)")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback address without tokens",
    )
    p.set_defaults(func=_sidecar("commands", "serve"))

    p = sub.add_parser("check-config", help="validate a configuration file")
    p.add_argument("file")
    p.set_defaults(func=_sidecar("commands", "check_config"))

    p = sub.add_parser("migrate", help="bring the store's schema up to date")
    p.add_argument("--store", help="store URL (JOBPULSE_STORE_URL)")
    p.add_argument("--config", help="jobpulse.yaml (JOBPULSE_CONFIG)")
    p.set_defaults(func=_sidecar("commands", "migrate"))

    p = sub.add_parser("replay", help="run the evaluator over recorded events, print JSON")
    p.add_argument("--config", required=True)
    p.add_argument("--events", required=True, help="NDJSON: wire events plus received_at")
    p.add_argument("--since", help="RFC 3339; default: the earliest arrival")
    p.add_argument("--until", required=True, help="RFC 3339")
    p.set_defaults(func=_sidecar("replay", "main"))

    p = sub.add_parser("exec", help="run a command and report it as a run of a job")
    p.add_argument("--job", required=True)
    p.add_argument("--schedule", help="cron expression to declare for the job")
    p.add_argument("--every", help="interval to declare for the job (instead of --schedule)")
    p.add_argument("--timezone", help="IANA timezone of the schedule")
    p.add_argument("--grace", help="grace to declare for the job")
    p.add_argument("--max-runtime", help="max runtime to declare for the job")
    p.add_argument("--url", help="sidecar URL (JOBPULSE_URL)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command args...")
    p.set_defaults(func=_local("shell", "main"))

    p = sub.add_parser("status", help="the fleet at a glance; exits 1 when a job is down")
    p.add_argument("--url", help="sidecar URL (JOBPULSE_URL)")
    p.add_argument("--job", help="one job only")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--token", help="read token (JOBPULSE_TOKEN)")
    p.set_defaults(func=_local("status", "main"))

    p = sub.add_parser("flush", help="deliver this machine's spooled events now")
    p.add_argument("--url", help="sidecar URL (JOBPULSE_URL)")
    p.set_defaults(func=_local("client", "flush_main"))

    p = sub.add_parser(
        "generate",
        help="print alert rules, Grafana dashboards or Alertmanager maintenance intervals",
    )
    p.add_argument("what", choices=["alerts", "dashboards", "alertmanager"])
    p.add_argument(
        "--config", help="jobpulse.yaml whose maintenance windows to translate (alertmanager)"
    )
    p.add_argument(
        "--base",
        help="your alertmanager.yml: write it whole with the maintenance intervals and muting "
        "routes merged in, each team's routes kept (alertmanager)",
    )
    p.add_argument("--profile", choices=["default", "test"], default="default")
    p.add_argument("--selector", default="", help='extra PromQL matchers, e.g. job="jobpulse"')
    p.add_argument(
        "--runbook-url", help="base URL of the runbooks alerts link to (JOBPULSE_RUNBOOK_URL)"
    )
    p.add_argument(
        "--dashboard-url",
        help="Grafana base URL for dashboard_url (JOBPULSE_DASHBOARD_URL, http://localhost:3000)",
    )
    p.add_argument(
        "--scrape-job",
        help="the sidecar's Prometheus scrape job, for up{job=...} (JOBPULSE_SCRAPE_JOB, jobpulse)",
    )
    p.add_argument(
        "--group-by",
        help="target labels alerts keep apart, e.g. cluster,namespace (JOBPULSE_ALERT_GROUP_BY)",
    )
    p.add_argument(
        "-o", "--output", help="file (alerts, alertmanager) or folder (dashboards); default stdout"
    )
    p.set_defaults(func=_generate)

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
