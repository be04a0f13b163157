"""pgqueuer (asyncpg) for peer.py: W is the batch size a consumer dequeues."""

import asyncio
import time
from importlib.metadata import version as package_version

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager

ENTRYPOINT = "noop"


def version():
    return "pgqueuer " + package_version("pgqueuer")


class Client:
    """The driver's own connection: schema, bulk inserts, the empty check."""

    @classmethod
    async def open(cls, dsn):
        client = cls()
        client.connection = await asyncpg.connect(dsn)
        client.queries = Queries(AsyncpgDriver(client.connection))
        client.backend_pids = [await client.connection.fetchval("/* hl-bench */ SELECT pg_backend_pid()")]
        return client

    async def prepare(self):
        """Installs the schema once per database; every run starts from
        vacuumed tables, analyzed once they have rows, as hl-worker's do
        (statistics of an empty table make procrastinate's fetch slow)."""
        if await self.connection.fetchval("/* hl-bench */ SELECT to_regclass('pgqueuer') IS NULL"):
            await self.queries.install()
        for table in ("pgqueuer", "pgqueuer_log"):
            await self.connection.execute(f"/* hl-bench */ VACUUM {table}")
            if await self.connection.fetchval(f"/* hl-bench */ SELECT EXISTS (SELECT 1 FROM {table})"):
                await self.connection.execute(f"/* hl-bench */ ANALYZE {table}")

    async def insert(self, count):
        await self.queries.enqueue([ENTRYPOINT] * count, [None] * count, [0] * count)

    async def wait_empty(self, timeout):
        """pgqueuer deletes a job's row when it completes."""
        deadline = time.monotonic() + timeout
        while await self.connection.fetchval("/* hl-bench */ SELECT EXISTS (SELECT 1 FROM pgqueuer)"):
            if time.monotonic() > deadline:
                raise SystemExit("peer.py: pgqueuer jobs left after the drain")
            await asyncio.sleep(0.01)

    async def close(self):
        await self.connection.close()


async def consume(dsn, width, on_job, should_stop):
    connection = await asyncpg.connect(dsn)
    manager = QueueManager(Queries(AsyncpgDriver(connection)))

    @manager.entrypoint(ENTRYPOINT)
    async def noop(job):
        on_job()

    async def watch():
        while not should_stop():
            await asyncio.sleep(0.05)
        manager.shutdown.set()

    watcher = asyncio.create_task(watch())
    await manager.run(batch_size=width)
    await watcher
    await connection.close()
