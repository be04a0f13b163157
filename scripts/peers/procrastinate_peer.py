"""procrastinate (psycopg 3) for peer.py: W is a worker's concurrency."""

import asyncio
import contextlib
import time
from importlib.metadata import version as package_version

import procrastinate
import psycopg

TASK = "noop"


def version():
    return "procrastinate " + package_version("procrastinate")


def make_app(dsn, on_job=None, connections=1):
    connector = procrastinate.PsycopgConnector(conninfo=dsn, min_size=1, max_size=connections)
    app = procrastinate.App(connector=connector)

    @app.task(name=TASK)
    async def noop():
        if on_job:
            on_job()

    return app, noop


class Client:
    """The driver's own connections: procrastinate's (bulk defers) and one
    for the schema and the empty check."""

    @classmethod
    async def open(cls, dsn):
        client = cls()
        client.admin = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        client.app, client.task = make_app(dsn)
        await client.app.open_async()
        row = await client.app.connector.execute_query_one_async("/* hl-bench */ SELECT pg_backend_pid() AS pid")
        admin_pid = await (await client.admin.execute("/* hl-bench */ SELECT pg_backend_pid()")).fetchone()
        client.backend_pids = [row["pid"], admin_pid[0]]
        return client

    async def prepare(self):
        """Installs the schema once per database; every run starts from
        vacuumed tables, analyzed once they have rows, as hl-worker's do
        (statistics of an empty table make procrastinate's fetch slow)."""
        missing = await (await self.admin.execute("/* hl-bench */ SELECT to_regclass('procrastinate_jobs') IS NULL")).fetchone()
        if missing[0]:
            await self.app.schema_manager.apply_schema_async()
        await self.admin.execute("/* hl-bench */ VACUUM procrastinate_jobs")
        rows = await (await self.admin.execute("/* hl-bench */ SELECT EXISTS (SELECT 1 FROM procrastinate_jobs)")).fetchone()
        if rows[0]:
            await self.admin.execute("/* hl-bench */ ANALYZE procrastinate_jobs")

    async def insert(self, count):
        if count == 1:
            await self.task.defer_async()
        else:
            await self.task.batch_defer_async(*([{}] * count))

    async def wait_empty(self, timeout):
        deadline = time.monotonic() + timeout
        query = "/* hl-bench */ SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing'))"
        while (await (await self.admin.execute(query)).fetchone())[0]:
            if time.monotonic() > deadline:
                raise SystemExit("peer.py: procrastinate jobs left after the drain")
            await asyncio.sleep(0.01)

    async def close(self):
        await self.app.close_async()
        await self.admin.close()


async def consume(dsn, width, on_job, should_stop):
    # The worker's pool: enough connections for its concurrency.
    app, _ = make_app(dsn, on_job, connections=width + 2)
    async with app.open_async():
        worker = asyncio.create_task(app.run_worker_async(concurrency=width, install_signal_handlers=False))
        while not should_stop() and not worker.done():
            await asyncio.sleep(0.05)
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
