#!/usr/bin/env python3
"""The engine benchmark's peer: the same 10-step workflow on DBOS (PyPI `dbos`).

A step is a no-op `@DBOS.step` whose result DBOS checkpoints durably in its system
database (SQLite or PostgreSQL) before the workflow moves on, like Capstan's
schedule/start/complete of an activity. Workflows run concurrently (async workflows on one
event loop, started with DBOS.start_workflow_async). Prints one JSON line.

Usage: dbos_bench.py --database-url sqlite:////tmp/x.sqlite --workflows 1000 --steps 10
"""
import argparse
import asyncio
import json
import os
import time

from dbos import DBOS, DBOSConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="SQLAlchemy URL of the DBOS system database")
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--label", default="dbos")
    args = parser.parse_args()

    config: DBOSConfig = {
        "name": "capstan-engine-bench",
        "system_database_url": args.database_url,
        "log_level": "WARNING",
        "sys_db_pool_size": 20,
    }
    DBOS(config=config)

    @DBOS.step()
    async def noop(index: int) -> int:
        return index

    @DBOS.workflow()
    async def ten_steps(steps: int) -> int:
        total = 0
        for index in range(steps):
            total += await noop(index)
        return total

    DBOS.launch()

    async def run() -> float:
        began = time.perf_counter()
        handles = await asyncio.gather(*(DBOS.start_workflow_async(ten_steps, args.steps) for _ in range(args.workflows)))
        await asyncio.gather(*(handle.get_result() for handle in handles))
        return time.perf_counter() - began

    seconds = asyncio.run(run())
    steps = args.workflows * args.steps
    print(json.dumps({
        "label": args.label, "workflows": args.workflows, "steps": steps, "seconds": round(seconds, 3),
        "steps_per_second": round(steps / seconds, 1), "dbos_version": __import__("importlib.metadata").metadata.version("dbos"),
    }))
    DBOS.destroy()
    os._exit(0)


if __name__ == "__main__":
    main()
