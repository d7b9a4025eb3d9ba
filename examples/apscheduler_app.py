"""An aiohttp app that runs its periodic jobs with APScheduler, reported to jobpulse.

    JOBPULSE_URL=http://127.0.0.1:8484 python examples/apscheduler_app.py

Each job is reported under its job id with its trigger as its schedule; misfires (the app was
busy or paused past a run time) show up as missed slots.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from jobpulse.instrumentation.apscheduler import instrument, uninstrument


async def refresh_exchange_rates() -> None:
    await asyncio.sleep(random.uniform(0.1, 0.5))


async def send_digest_emails() -> None:
    await asyncio.sleep(random.uniform(0.5, 2.0))
    if random.random() < 0.2:
        raise ConnectionError("SMTP server refused the connection")


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(refresh_exchange_rates, "interval", seconds=30, id="refresh-exchange-rates")
    scheduler.add_job(
        send_digest_emails,
        "cron",
        day_of_week="mon-fri",  # APScheduler's Monday = 0; reported as cron's 1-5
        minute="*/2",
        timezone="Europe/Riga",
        id="send-digest-emails",
        misfire_grace_time=30,
    )
    instrument(scheduler)
    scheduler.start()
    yield
    scheduler.shutdown(wait=False)
    uninstrument(scheduler)


async def index(request: web.Request) -> web.Response:
    return web.Response(text="the jobs report to jobpulse; see its status page\n")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", index)
    app.cleanup_ctx.append(scheduler_ctx)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=8080)
